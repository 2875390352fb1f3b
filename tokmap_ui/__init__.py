"""tokmap: move language models across vocabularies.

The core (everything here except ``tokmap_ui.ui``) never imports gradio; the
CLI (``python -m tokmap_ui``) and the Gradio app call the same functions.
"""

__version__ = "0.1.0"
