"""Format detection and chunked readers for dropped files: CSV, CSV.gz, Parquet, JSON Lines.

The format is decided by content (gzip magic, `PAR1` magic, a JSON object as the first
character, else delimited text); the extension only has to agree where it makes a promise the
content breaks (`.gz`, `.parquet`). Readers yield pandas frames of at most `chunk_rows` rows with
the file's own column names, so memory stays bounded by the chunk size, not the file size.

Whatever a file holds, reading it stays within `ReadLimits` (`[ingest]`): binary content
anywhere in a text file (a NUL byte, or control bytes over 1% of any 64 KB) is refused at its
byte offset as the stream is read, a line longer than
`max_line_bytes` is refused as soon as that many bytes of it are read (a 1 KB gzip can
decompress to a single 1 GiB line), a record that does not fit the reader's block of
`max_record_bytes` is refused before it is parsed, a file with more than `max_columns` columns
(or JSON keys) is refused before a frame is built, and a chunk holds at most `CHUNK_CELLS`
cells and about `CHUNK_BYTES` bytes, however wide or long its rows.

Modules: `formats` (detection by content), `limits` (`ReadLimits` and the line- and
byte-limited text stream), `source` (the `SourceTable` every reader is), `delimited` (CSV),
`parquet`, `json_lines`, and `tables` (`open_table`: the reader of a detected format).
"""
