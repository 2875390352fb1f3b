"""The Gradio app: the only package that imports gradio.

``build_app()`` returns the Blocks without launching (tests call it directly);
``launch_app()`` launches it on 127.0.0.1:7860 unless told otherwise.
"""

from tokmap_ui.ui.app import build_app, launch_app

__all__ = ["build_app", "launch_app"]
