"""The per-file stages of processing: decode, gate, render and write results, quarantine.

Each module has one job and imports its heavy libraries (numpy, Pillow, OpenCV) inside its
functions, so importing this package stays cheap.
"""
