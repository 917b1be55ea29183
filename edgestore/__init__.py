"""edgestore: distributed object storage for edge clouds."""
