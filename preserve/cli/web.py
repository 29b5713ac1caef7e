"""`preserve serve`: the web application for officers and readers (preserve.web)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import RepoOpt, err, handled, repo_path


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: the whole "
                                       "network; put it behind HTTPS then)."),
              port: int = typer.Option(8080, "--port", help="Port to listen on."),
              https_only: bool = typer.Option(False, "--https-only", help="Session cookies only over HTTPS "
                                              "(set this behind an HTTPS reverse proxy)."),
              repo: Optional[Path] = RepoOpt) -> None:
        """Run the web application (Ứng dụng web): sign in with a user made by `preserve users add`."""
        import uvicorn

        from ..web.app import create_app

        with handled():
            application = create_app(repo_path(repo), https_only=https_only)
        err.print(f"preserve: http://{host}:{port}/  (Ctrl-C to stop)")
        uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
