"""The HTML audit report: one self-contained page an officer can read and print (Vietnamese first)."""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import Any

from ..atomic import write_text

_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; margin: .6em 0; }
th, td { border: 1px solid #999; padding: .3em .5em; text-align: left; vertical-align: top; font-size: .9em; }
th { background: #eee; } .ok { color: #075; font-weight: bold; } .bad { color: #b00; font-weight: bold; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: .85em; word-break: break-all; }
.en { color: #555; } @media print { body { margin: 1cm; } }
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def render(data: dict[str, Any], organisation: str, root: Path, at: str | None = None) -> str:
    at = at or datetime.now().astimezone().isoformat(timespec="seconds")
    verdict = ('<span class="ok">NGUYÊN VẸN / INTACT</span>' if data["ok"] else
               '<span class="bad">CÓ VẤN ĐỀ / PROBLEMS FOUND</span>')
    parts = [f"<!DOCTYPE html><html lang='vi'><head><meta charset='utf-8'><title>Báo cáo kiểm tra toàn vẹn — "
             f"{_e(organisation)}</title><style>{_CSS}</style></head><body>",
             "<h1>Báo cáo kiểm tra toàn vẹn <span class='en'>/ Fixity audit report</span></h1>",
             f"<p>{_e(organisation)} — <code>{_e(root)}</code><br>Thời điểm / time: {_e(at)}<br>"
             f"Kết quả / result: {verdict}<br>Đã kiểm tra / replicas audited: {data['replicas']}, "
             f"hư hỏng / damaged: {data['damaged']}, {data['bytes']:,} bytes in {data['seconds']} s</p>",
             "<h2>Theo tầng lưu trữ <span class='en'>/ Per tier</span></h2><table><tr><th>Tầng / tier</th>"
             "<th>Bản sao / replicas</th><th>Nguyên vẹn / intact</th><th>Hư hỏng / damaged</th>"
             "<th>Mất / missing</th><th>Tệp / files</th><th>Bytes</th></tr>"]
    for tier, t in sorted(data["tiers"].items()):
        cls = "ok" if t["damaged"] + t["missing"] == 0 else "bad"
        parts.append(f"<tr><td>{_e(tier)}</td><td>{t['replicas']}</td><td class='ok'>{t['intact']}</td>"
                     f"<td class='{cls}'>{t['damaged']}</td><td class='{cls}'>{t['missing']}</td>"
                     f"<td>{t['files']}</td><td>{t['bytes']:,}</td></tr>")
    parts.append("</table>")
    if data["unreachable"]:
        parts.append("<h2 class='bad'>Tầng không kết nối được <span class='en'>/ Unreachable tiers</span></h2><ul>")
        parts += [f"<li><b>{_e(u['tier'])}</b>: {_e(u['reason'])}</li>" for u in data["unreachable"]]
        parts.append("</ul>")
    if data["problems"]:
        parts.append("<h2 class='bad'>Vấn đề phát hiện <span class='en'>/ Problems found</span></h2>")
    for a in data["problems"]:
        parts.append(f"<h3>{_e(a['fileCode'])} — <code>{_e(a['aip'])}</code> — tầng / tier <b>{_e(a['tier'])}</b>: "
                     f"<span class='bad'>{_e(a['outcome'])}</span></h3>"
                     "<table><tr><th>Mã / code</th><th>Tệp / file</th><th>Cần / expected</th><th>Thấy / found</th>"
                     "<th>Mô tả / description</th></tr>")
        for f in a["findings"]:
            p = f["params"]
            parts.append(f"<tr><td><code>{_e(f['code'])}</code></td><td><code>{_e(p.get('path'))}</code></td>"
                         f"<td><code>{_e(p.get('expected'))}</code></td><td><code>{_e(p.get('found'))}</code></td>"
                         f"<td>{_e(f['message_vi'])}<br><span class='en'>{_e(f['message_en'])}</span></td></tr>")
        parts.append(f"</table><p>Sửa bằng lệnh / repair with: <code>preserve repair --aip {_e(a['aip'])} "
                     f"--tier {_e(a['tier'])} --repo {_e(root)}</code></p>")
    for c in data.get("offsite_checks", []):
        cls = "ok" if c["ok"] else "bad"
        parts.append(f"<p>Kho restic / restic repository <b>{_e(c['tier'])}</b>: <code>restic check "
                     f"--read-data-subset {_e(c['subset'])}</code> — <span class='{cls}'>"
                     f"{'ok' if c['ok'] else 'errors: ' + _e('; '.join(c.get('errors', [])[:5]))}</span></p>")
    if data.get("stopped_early"):
        parts.append(f"<p>Dừng do hết thời gian; còn {data['remaining']} bản sao cho lần chạy sau / stopped at the "
                     f"time limit; {data['remaining']} replicas left for the next run.</p>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(path: Path, data: dict[str, Any], organisation: str, root: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, render(data, organisation, root))
    return path
