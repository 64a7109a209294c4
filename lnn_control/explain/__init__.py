"""``lnn-control explain``: what a policy looks at and what its neurons do.

Reads a policy's differentiable forward pass (any core: LTC, CfC, wired CT-RNN, LSTM, GRU, CT-RNN,
feed-forward) and, in simulation, the env's privileged camera masks; it never changes the policy.

- :mod:`.grad`: the policy as a function of a float image (for gradients);
- :mod:`.saliency`: VisualBackProp and SmoothGrad maps ``[H,W]`` in [0, 1];
- :mod:`.attention`: SSIM between saliency maps, share of saliency mass on a mask;
- :mod:`.internals`: neuron groups, LTC effective time constants, CfC gate values;
- :mod:`.recording`: a closed-loop episode (or a run log) as the frames, clean twins, masks,
  extras, dt and signals the analysis needs;
- :mod:`.analysis`: saliency, states and time constants along a recording;
- :mod:`.figures` / :mod:`.video`: PNGs and the video; :mod:`.pipeline`: the whole command.
"""
