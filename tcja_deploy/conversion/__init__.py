"""Conversion stage: a trained TCJA-SNN → a small typed graph → passes → a deploy directory.

- :mod:`~tcja_deploy.conversion.graph`: node dataclasses and the :class:`Graph` (``graph.json`` schema);
- :mod:`~tcja_deploy.conversion.build`: the graph of a trained :class:`~tcja_deploy.models.TCJASNN`;
- :mod:`~tcja_deploy.conversion.execute`: what every node computes (float and fixed point, in torch);
- :mod:`~tcja_deploy.conversion.passes`: ``Graph → Graph`` rewrites that keep the computed function;
- :mod:`~tcja_deploy.conversion.targets`: a target = a list of passes (loihi2, lava-float, onnx);
- :mod:`~tcja_deploy.conversion.netx_export`, :mod:`~tcja_deploy.conversion.onnx_export`: the writers;
- :mod:`~tcja_deploy.conversion.fidelity`: float vs emulator vs Lava vs ONNX, measured on every conversion;
- :mod:`~tcja_deploy.conversion.deploy`: the whole conversion into a deploy directory;
- :mod:`~tcja_deploy.conversion.transposed`, :mod:`~tcja_deploy.conversion.vae_graph`,
  :mod:`~tcja_deploy.conversion.vae_deploy`: the spiking VAE's decoder and encoder (transposed convs and convs as
  one exact sparse synapse each; their float and fixed-point graphs; the VAE deploy directory).
"""
