"""Simulated robots: a Gymnasium env behind the Robot interface, stepped inside ``read()``
(:mod:`.lockstep`) or in its own process on the loop's clock (:mod:`.clocked`)."""
