"""The paper's numbers, table rendering (Markdown, CSV, LaTeX) and the report."""
