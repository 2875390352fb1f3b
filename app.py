"""Entry point for `python app.py [--host H] [--port P]` and Hugging Face Spaces."""

from tokmap_ui.ui import build_app, launch_app

demo = build_app()

if __name__ == "__main__":
    from tokmap_ui.cli.serve import parse_server_flags

    launch_app(demo, *parse_server_flags())
