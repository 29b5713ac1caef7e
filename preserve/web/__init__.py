"""The web application (FastAPI, server-rendered Jinja2): pages for officers and readers, and a JSON API under
/api. It only calls the `Repository` façade; core code never imports it. `preserve serve` runs it."""
