"""The stages of `keras_compress.demo`: compressions, exports, measurements.

`stages` fine-tunes and exports the compressed copies, `measure` runs an
artifact in its runtime, `report` writes the table, the plot and the
progress lines.
"""
