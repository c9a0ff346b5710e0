"""Surface meshes and maximum-intensity projections of vessel masks, for reports.

* :func:`mask_mesh`: marching cubes (``skimage.measure.marching_cubes(mask, 0.5,
  spacing=...)``) on the mask padded by one background voxel, so that a vessel touching the
  volume's border still gives a closed surface; vertices mapped by the volume's affine into its
  world frame (RAS+ mm for NIfTI; for a ``.npy`` volume, whose affine is ``diag(spacing, 1)``,
  millimetres along the array axes from the centre of voxel (0, 0, 0)). Faces wind
  counter-clockwise seen from outside (outward normals), also under a mirroring affine.
* :func:`write_stl` (binary STL, numpy-stl) and :func:`write_mesh_html` (plotly ``Mesh3d``,
  plotly.js inside the file, so it opens offline), both atomic.
* :func:`mip_grid`: maximum-intensity projections along the three array axes, side by side, one
  row per volume, stretched so that every pixel is square in mm.
"""
from typing import List, Sequence, Tuple

import numpy as np

from vertspine.utils.file_io import atomic_write

__all__ = ["MeshTrace", "affine_spacing", "mask_mesh", "mip_grid", "write_mesh_html", "write_stl"]

# One surface in the HTML viewer: (name, vertices [V, 3] mm, faces [F, 3], colour, opacity).
MeshTrace = Tuple[str, np.ndarray, np.ndarray, str, float]
_GAP = 2  # pixels of mid-grey between the panels of mip_grid
_GAP_VALUE = 128


def affine_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size in mm along each array axis: the norms of the affine's first three columns."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def mask_mesh(mask: np.ndarray, affine: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The surface of a binary mask in the affine's world frame.

    Args:
        mask: [X, Y, Z] mask (nonzero = inside), in the affine's index order.
        affine: [4, 4] voxel index -> world mm.
    Returns:
        (vertices float64 [V, 3] world mm, faces int64 [F, 3] vertex indices, outward winding).
    Raises:
        ValueError: the mask is not 3D or has no voxel inside.
    """
    from skimage.measure import marching_cubes

    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 3 or not mask.any():
        raise ValueError(f"Cannot mesh a mask of shape {mask.shape} with {np.count_nonzero(mask)} "
                         "foreground voxels: give a non-empty 3D mask.")
    affine = np.asarray(affine, dtype=np.float64)
    spacing = affine_spacing(affine)
    vertices, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(np.float32), 0.5,
                                           spacing=tuple(spacing))
    vertices = vertices - spacing  # undo the padding: index i + 1 in the padded array is i
    rotation = affine[:3, :3] / spacing
    # scikit-image winds faces with inward normals for a bright object; a mirror flips them again
    faces = faces[:, ::-1] if np.linalg.det(rotation) > 0 else faces
    return vertices @ rotation.T + affine[:3, 3], np.ascontiguousarray(faces, dtype=np.int64)


def write_stl(path: str, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh as binary STL (float32 coordinates, mm), atomically.

    Args:
        path: the ``.stl`` target.
        vertices: [V, 3] coordinates.
        faces: [F, 3] vertex indices; normals are computed from the winding.
    """
    from stl import Mode
    from stl.mesh import Mesh

    surface = Mesh(np.zeros(len(faces), dtype=Mesh.dtype))
    surface.vectors[:] = np.asarray(vertices)[np.asarray(faces)]
    surface.update_normals()
    with atomic_write(path, "wb") as f:
        surface.save(path, fh=f, mode=Mode.BINARY)


def write_mesh_html(path: str, traces: Sequence[MeshTrace], title: str) -> None:
    """Write an interactive 3D viewer of the surfaces as one self-contained HTML file.

    Args:
        path: the ``.html`` target (about 5 MB: plotly.js is included, so it works offline).
        traces: the surfaces (:data:`MeshTrace`), drawn in order.
        title: the page's title, e.g. the case name and the frame of the coordinates.
    """
    import plotly.graph_objects as go

    figure = go.Figure([go.Mesh3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1],
                                  k=f[:, 2], name=name, color=color, opacity=opacity,
                                  showlegend=True, flatshading=False)
                        for name, v, f, color, opacity in traces])
    axes = {f"{axis}axis_title": f"{axis} (mm)" for axis in "xyz"}
    figure.update_layout(title=title, scene=dict(aspectmode="data", **axes),
                         margin=dict(l=0, r=0, t=40, b=0))
    html = figure.to_html(include_plotlyjs=True, full_html=True)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(html)


def _to_uint8(volume: np.ndarray, is_mask: bool, threshold: float) -> np.ndarray:
    """A mask as 0/255 (inside where >= threshold); an image min-max scaled to 0..255."""
    if is_mask:
        return np.where(volume >= threshold, 255, 0).astype(np.uint8)
    low, high = float(volume.min()), float(volume.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.round((volume - low) * scale).astype(np.uint8)


def mip_grid(volumes: Sequence[Tuple[np.ndarray, bool]], spacing: Sequence[float], *,
             threshold: float = 0.5) -> np.ndarray:
    """Maximum-intensity projections of volumes of one shape, as one greyscale picture.

    Row r holds volume r; column a its maximum along array axis a (a = 0, 1, 2), whose rows and
    columns are the two remaining array axes in order. Each panel is stretched (nearest
    neighbour) to square pixels of ``min(spacing)`` mm, panels are top-aligned and separated by
    2 grey pixels, and empty space is black.

    Args:
        volumes: (volume [X, Y, Z], is_mask) pairs; a mask is white where >= ``threshold``, an
            image is min-max scaled to 0..255 over the whole volume.
        spacing: mm per array axis.
        threshold: the masks' inside threshold.
    Returns:
        uint8 [H, W].
    Raises:
        ValueError: no volume, or volumes that are not 3D of one shape.
    """
    import cv2

    shapes = {np.shape(v) for v, _ in volumes}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"Projections need 3D volumes of one shape, got {sorted(shapes)}.")
    spacing = np.asarray(spacing, dtype=np.float64)
    pixel = spacing.min()
    rows: List[List[np.ndarray]] = []
    for volume, is_mask in volumes:
        volume = _to_uint8(np.asarray(volume, dtype=np.float64), is_mask, threshold)
        row = []
        for axis in range(3):
            kept = [a for a in range(3) if a != axis]
            size = [max(1, int(round(volume.shape[a] * spacing[a] / pixel))) for a in kept]
            row.append(cv2.resize(volume.max(axis=axis), (size[1], size[0]),
                                  interpolation=cv2.INTER_NEAREST))
        rows.append(row)
    widths = [max(row[a].shape[1] for row in rows) for a in range(3)]
    height = max(panel.shape[0] for row in rows for panel in row)
    grid = np.full((len(rows) * (height + _GAP) - _GAP, sum(widths) + 2 * _GAP), _GAP_VALUE,
                   np.uint8)
    for r, row in enumerate(rows):
        top = r * (height + _GAP)
        for a, panel in enumerate(row):
            left = sum(widths[:a]) + a * _GAP
            grid[top:top + height, left:left + widths[a]] = 0
            grid[top:top + panel.shape[0], left:left + panel.shape[1]] = panel
    return grid
