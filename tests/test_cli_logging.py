"""The library logs through ``logging``; the CLI shows it on stderr, with -v / -q."""

from __future__ import annotations

import logging

from lnn_control.cli import build_parser, configure_logging


def test_info_is_plain_warnings_are_named_and_quiet_hides_info(capsys):
    log = logging.getLogger("lnn_control.train.pipeline")
    configure_logging(logging.INFO)
    log.info("epoch 1/8: train 0.2")
    log.warning("DAgger round 1 rejected")
    log.debug("hidden at INFO")
    assert capsys.readouterr().err.splitlines() == ["epoch 1/8: train 0.2", "warning: DAgger round 1 rejected"]
    configure_logging(logging.WARNING)
    log.info("not shown")
    log.error("shown")
    assert capsys.readouterr().err.splitlines() == ["error: shown"]
    configure_logging(logging.INFO)


def test_verbose_and_quiet_flags_set_the_level():
    parser = build_parser()
    assert parser.parse_args(["info"]).log_level == logging.INFO
    assert parser.parse_args(["-q", "info"]).log_level == logging.WARNING
    assert parser.parse_args(["--verbose", "info"]).log_level == logging.DEBUG
    # a subcommand's own --quiet (no progress bars) is a different option
    args = parser.parse_args(["train", "--launch", "x", "--out", "y", "--quiet"])
    assert args.quiet and args.log_level == logging.INFO
