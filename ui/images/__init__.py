"""The images task's Streamlit parts (its task entry in core.tasks names them): Datasets page forms and views."""
