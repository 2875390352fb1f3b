"""All disk and hub I/O: tokenizers, dictionaries, corpora, models, archives, token maps.

Algorithms elsewhere take objects; only this package turns paths into objects
and objects into files.
"""
