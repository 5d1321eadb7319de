"""Ray casting against posed head meshes with open3d's RaycastingScene: the project's one
casting core, shared by the renderer (``annotate.synth.render``) and landmark visibility
(``annotate.head.visibility``).

Two ways to put heads into a scene:

* ``WorldScene``: every posed head's world vertices in one RaycastingScene, one BVH per
  frame (about 40 ms for three 19k-triangle heads). Hits carry the triangle and the
  barycentrics, which the renderer shades with.
* ``HeadFrameCaster``: one RaycastingScene per distinct mesh, in the mesh's own head frame,
  built once. A ray is mapped into the frame of the posed head it is tested against
  (``x_head = R^T (x_world - t) / scale``; the direction is mapped the same way without
  normalising, so hit distances stay in world units). One BVH then serves every frame and
  every person sharing the mesh, and the rays of many frames go to open3d in one call.

Units: world cm. A ray is ``[origin, direction]``; ``t_hit`` is in units of the direction's
length (world cm for unit world directions), ``inf`` for a miss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from annotate.head.head_mesh import HeadMesh
from annotate.core.open3d_loader import open3d_module


@dataclass(eq=False)
class RayHits:
    """First hits of N rays.

    person_index: (N,) int64 index into the scene's heads, -1 for a miss.
    triangle: (N,) int32 triangle of that head's mesh, -1 for a miss.
    uv: (N, 2) float32 barycentrics, hit = (1-u-v) v0 + u v1 + v v2.
    t_hit: (N,) float32 distance in units of the ray direction's length (inf for a miss).
    """

    person_index: np.ndarray
    triangle: np.ndarray
    uv: np.ndarray
    t_hit: np.ndarray

    @classmethod
    def misses(cls, n: int) -> "RayHits":
        """N rays that hit nothing."""
        return cls(np.full(n, -1, np.int64), np.full(n, -1, np.int32),
                   np.zeros((n, 2), np.float32), np.full(n, np.inf, np.float32))

    def take(self, index) -> "RayHits":
        """The hits of the rays at ``index`` (a slice, a mask or an index array)."""
        return RayHits(self.person_index[index], self.triangle[index], self.uv[index], self.t_hit[index])


def _tensor(array: np.ndarray, dtype):
    return open3d_module().core.Tensor.from_numpy(np.ascontiguousarray(array, dtype=dtype))


def rays_from(origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(N, 6) float32 ``[origin, direction]`` from (N, 3) origins and (N, 3) directions."""
    rays = np.empty((len(origins), 6), dtype=np.float32)
    rays[:, :3] = origins
    rays[:, 3:] = directions
    return rays


class WorldScene:
    """Posed heads of one frame in one RaycastingScene (geometry i is head i).

    vertices_world: P arrays (V_i, 3) cm; triangles: P arrays (T_i, 3) vertex indices.
    nthreads: threads open3d may use to build and cast (0 = all cores; 1 inside workers
    that are already parallel).
    """

    def __init__(self, vertices_world: Sequence[np.ndarray], triangles: Sequence[np.ndarray],
                 nthreads: int = 0):
        o3d = open3d_module()
        self.nthreads = nthreads
        self.num_heads = len(vertices_world)
        self._scene = o3d.t.geometry.RaycastingScene(nthreads=nthreads)
        gids = [self._scene.add_triangles(_tensor(v, np.float32), _tensor(t, np.uint32))
                for v, t in zip(vertices_world, triangles)]
        self._head_of_geometry = np.full(max(gids, default=0) + 1, -1, dtype=np.int64)
        self._head_of_geometry[gids] = np.arange(len(gids))

    def cast(self, rays: np.ndarray) -> RayHits:
        """First hits of rays (N, 6) ``[origin (cm), direction]`` in the world."""
        o3d = open3d_module()
        n = len(rays)
        if n == 0 or self.num_heads == 0:
            return RayHits.misses(n)
        out = self._scene.cast_rays(_tensor(rays, np.float32), nthreads=self.nthreads)
        gid = out["geometry_ids"].numpy()
        hit = gid != o3d.t.geometry.RaycastingScene.INVALID_ID
        head = np.full(n, -1, dtype=np.int64)
        head[hit] = self._head_of_geometry[gid[hit]]
        triangle = np.where(hit, out["primitive_ids"].numpy(), -1).astype(np.int32)
        return RayHits(head, triangle, out["primitive_uvs"].numpy(), out["t_hit"].numpy())

    def cast_segments(self, origins: np.ndarray, directions: np.ndarray) -> RayHits:
        """First hits of rays from (N, 3) origins along (N, 3) directions, world cm."""
        return self.cast(rays_from(origins, directions))


class HeadFrameCaster:
    """Casting against meshes in their own head frame; each BVH is built once.

    meshes: the distinct meshes (a label stage has one, the head model's; the synthetic
    ground truth one per person). bounding_radius: (K,) the largest vertex distance from
    each mesh's origin (the head centre), head-frame cm, for culling rays that cannot hit.
    """

    def __init__(self, meshes: Sequence[HeadMesh], nthreads: int = 0):
        o3d = open3d_module()
        self.nthreads = nthreads
        self._scenes = []
        for mesh in meshes:
            scene = o3d.t.geometry.RaycastingScene(nthreads=nthreads)
            scene.add_triangles(_tensor(mesh.vertices, np.float32), _tensor(mesh.triangles, np.uint32))
            self._scenes.append(scene)
        self.bounding_radius = np.array([np.linalg.norm(m.vertices, axis=1).max() for m in meshes])

    def __len__(self) -> int:
        return len(self._scenes)

    def t_hit(self, rays_head: np.ndarray, mesh_index: np.ndarray | int = 0) -> np.ndarray:
        """(N,) float32 distance to the first hit of each ray, inf for a miss.

        rays_head: (N, 6) ``[origin, direction]`` in the head frame of mesh ``mesh_index``
        ((N,) or one int for all). A direction mapped from a unit world direction by
        ``R^T d / scale`` makes the distance world cm.
        """
        out = np.full(len(rays_head), np.inf, dtype=np.float32)
        for k, sel, rays in self._rays_by_mesh(rays_head, mesh_index):
            out[sel] = self._scenes[k].cast_rays(rays, nthreads=self.nthreads)["t_hit"].numpy()
        return out

    def occluded(self, segments_head: np.ndarray, mesh_index: np.ndarray | int = 0) -> np.ndarray:
        """(N,) bool: the mesh has a point on the segment ``origin + [0, 1) * vector``.

        segments_head: (N, 6) ``[origin, vector]`` in the head frame of mesh ``mesh_index``.
        An any-hit query: about twice as fast as ``t_hit`` (open3d stops at the first
        triangle found instead of searching for the nearest).
        """
        out = np.zeros(len(segments_head), dtype=bool)
        for k, sel, rays in self._rays_by_mesh(segments_head, mesh_index):
            out[sel] = self._scenes[k].test_occlusions(rays, tnear=0.0, tfar=1.0, nthreads=self.nthreads).numpy()
        return out

    def _rays_by_mesh(self, rays: np.ndarray, mesh_index):
        """Yield (mesh k, selection, open3d float32 tensor) for the rays of each mesh."""
        n = len(rays)
        mesh_index = np.broadcast_to(np.asarray(mesh_index, dtype=np.int64), (n,))
        for k in range(len(self._scenes)):
            sel = np.flatnonzero(mesh_index == k)
            if len(sel) == 0:
                continue
            whole = len(sel) == n                  # the common case: skip the gather
            yield k, (slice(None) if whole else sel), _tensor(rays if whole else rays[sel], np.float32)
