"""The values every layer speaks: the message model, errors, and the handbook's timescales.
Pure: nothing here reads a file, a clock or a socket."""
