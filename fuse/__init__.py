"""The FUSE mount and the container-volume plugin."""
