"""A run's data statistics for a notebook: TFDV's Facets view where it loads, the report's tables where it
does not.

Facets loads its code from the internet into an iframe: offline, in an HTML export opened later, or in a
notebook whose scripts do not run, that frame stays blank. Here the report's tables (report.py) show
first, with Facets laid out beside them in a collapsed box; a script swaps the two once Facets has drawn
itself, and gives up after a minute, leaving the tables.
"""

from __future__ import annotations

import uuid

from tensorflow_data_validation.utils import display_util

from pipeline.governance import report
from pipeline.metadata import artifact_files

# Seconds the page waits for Facets before it leaves the tables as they are.
FACETS_WAIT_S = 60

_SWAP = """<script>
(function () {
  var root = document.getElementById("%(id)s");
  if (!root) { return; }
  var facets = root.querySelector(".facets-box"), tables = root.querySelector(".tables-box");
  var frame = facets.querySelector("iframe"), tries = 0;
  var timer = setInterval(function () {
    tries += 1;
    var page = frame && frame.contentDocument, view = page && page.querySelector("facets-overview");
    if (view && (view.shadowRoot || view.childElementCount > 0) && page.body.offsetHeight > 50) {
      clearInterval(timer);
      frame.setAttribute("height", page.body.offsetHeight + "px");
      facets.style.height = "auto";
      tables.style.display = "none";
    } else if (tries > %(tries)d) {
      clearInterval(timer);
    }
  }, 500);
})();
</script>"""


def statistics_html(statistics_uri: str) -> str:
    """The splits' statistics: the report's tables, replaced by Facets (the first split beside the
    second) in a browser that loads it."""
    splits = artifact_files.load_statistics(statistics_uri)
    tables = report.statistics_section(statistics_uri)
    if not splits:
        return tables
    names = sorted(splits, key=lambda name: name != "train")  # Train on the left, as TFDV's examples do.
    facets = display_util.get_statistics_html(
        splits[names[0]],
        splits[names[1]] if len(names) > 1 else None,
        lhs_name=names[0],
        rhs_name=names[1] if len(names) > 1 else "",
    )
    element = f"statistics-{uuid.uuid4().hex}"
    return (
        f'<div id="{element}">'
        # Collapsed, not hidden: Facets lays itself out in the frame as it would in view.
        f'<div class="facets-box" style="height: 0; overflow: hidden">{facets}</div>'
        f'<div class="tables-box">{tables}</div>'
        "</div>" + _SWAP % {"id": element, "tries": FACETS_WAIT_S * 2}
    )
