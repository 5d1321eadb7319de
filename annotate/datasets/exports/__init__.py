"""Exports of the sample shards for other trainers' loaders.

- ``whenet``: WHENet-style list files (``image,yaw,pitch,roll`` lines) + JPEG folders;
- ``w300lp``: 300W-LP / AFLW2000 layout (JPEG + .mat with ``Pose_Para`` and ``pt2d``) as
  HopeNet and 6DRepNet read it with ``scipy.io.loadmat``;
- ``coco``: COCO-style full-frame JSON with head boxes, Euler angles and 6DoF poses as
  DirectMHP and img2pose consume, laid out so that DirectMHP's own scripts read it as they
  are (flat ``<image id>.jpg`` names, ids in its layout: ``image_ids``).

Each export is built in a hidden staging folder and renamed into place when complete.
"""
