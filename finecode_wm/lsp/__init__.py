"""The editor's door: the pygls language server (`server`) and the findings it pushes and
answers pulls with (`diagnostics`)."""
