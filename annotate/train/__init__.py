"""The bundled trainer and evaluator (docs/training.md).

- ``config``: the train config (schemas/train_config.schema.yaml) and the arch presets;
- ``bins``, ``models``, ``losses``, ``rotations_torch``: the WHENet, HopeNet, coarse-fine,
  6D and multi-task networks and their losses;
- ``augment``, ``data``: label-preserving augmentation and the input pipeline on top of
  ``annotate.datasets.readers.ShardRecords``;
- ``engine``, ``checkpoint``: the training loop (AMP, DDP, resume, NaN stop);
- ``metrics``, ``evaluate``, ``plots``, ``external``: scoring, reports, AFLW2000-3D and BIWI;
- ``commands``: ``annotate train`` and ``annotate evaluate``.
"""
