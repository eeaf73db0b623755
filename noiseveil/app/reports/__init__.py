"""Report commands: each regenerates one paper's tables on our data into ``results/`` (JSON,
Markdown and figures) from the shipped models, so every published number has one command."""
