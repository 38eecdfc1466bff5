"""What each result file holds and how it is encoded: one module per concern (formats, colour,
metadata, layout, edges). The pipeline's write stage calls into it; it imports no stage."""
