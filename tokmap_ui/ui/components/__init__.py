"""Custom Gradio components: the token map plot (plotly Scattergl in a ``gr.HTML``)."""

from tokmap_ui.ui.components.token_map_plot import (Colouring, PointClick, Selection, TokenMapPlot,
                                                     colour_by_category, colour_by_side, decode_payload,
                                                     empty_payload, parse_click, parse_lasso, parse_search,
                                                     plot_payload, plot_update)

__all__ = ["Colouring", "PointClick", "Selection", "TokenMapPlot", "colour_by_category", "colour_by_side",
           "decode_payload", "empty_payload", "parse_click", "parse_lasso", "parse_search", "plot_payload",
           "plot_update"]
