"""The bundled trainer and evaluator (docs/training.md).

- ``config``: the train config (schemas/train_config.schema.yaml) and the arch presets;
- ``bins``, ``models``, ``losses``, ``rotations_torch``: the WHENet, HopeNet, coarse-fine,
  6D and multi-task networks and their losses;
- ``ssr``, ``fsanet``: SSR-Net's stagewise soft regression (full-range yaw through a
  circular first stage) and the SSR-Net / FSA-Net feature extractors on 64 px crops;
- ``augment``, ``data``: label-preserving augmentation and the input pipeline on top of
  ``annotate.datasets.readers.ShardRecords``;
- ``setup``: a run's set-up (data, model, optimizer, schedule, resume of the same run);
- ``engine``: the loop (``train`` = ``train_one_epoch`` and ``evaluate`` in turn, NaN stop);
- ``distributed``: device choice, autocast and GradScaler, DDP, collectives;
- ``checkpoint``, ``runlog``: checkpoints (safe to load, with the run's identity), log.txt
  and metrics.csv;
- ``metrics``, ``evaluate``, ``plots``, ``external``: scoring, reports, AFLW2000-3D and BIWI;
- ``commands``: ``annotate train`` and ``annotate evaluate``.
"""
