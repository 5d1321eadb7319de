"""The head: its frame (WHENet zero pose), the face70 landmark layout, the reference faces, the
mean head model and mesh, ray casting, per-landmark visibility and the per-view labels. Used
by synth, detect and labels; imports only ``core`` and ``geometry``."""
