"""The model report: ``build`` computes plain data, ``render`` draws one self-contained HTML
file (``livemodel report NAME -o report.html``)."""
