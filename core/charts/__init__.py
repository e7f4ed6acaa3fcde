"""Pure chart builders: each function takes data and returns a plotly Figure (no Streamlit, no I/O).

One module per area: datasets (profiles), training (live curves), evaluation, recommendations.
"""
