"""Access copies (DIPs) made on request: watermarked PDFs ("BẢN SAO"), page images and a METS, as one .zip.

Pure library code: the access layer decides who may have what; this package only builds what it is told to.
"""

from preserve.dip.package import DipDocument, DipResult, DipSpec, build_dip, watermark_lines
from preserve.dip.watermark import image_to_pdf, render_pages, watermark_pdf

__all__ = ["DipDocument", "DipResult", "DipSpec", "build_dip", "image_to_pdf", "render_pages", "watermark_lines",
           "watermark_pdf"]
