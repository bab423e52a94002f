"""Sphinx configuration of the opsloom documentation (Markdown pages read by MyST).

``make docs`` builds it with warnings as errors, so a broken link, a missing anchor or a page
that no table of contents reaches fails the build. Nothing here reaches the network.
"""

project = "opsloom"
author = "opsloom contributors"
copyright = "opsloom contributors"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
# _generated/ holds fragments that reference pages include; they are not pages of their own.
exclude_patterns = ["_build", "_generated"]

myst_enable_extensions = ["colon_fence", "deflist"]
# Headings get anchors, so links such as [leases](durability.md#leases) are checked too.
myst_heading_anchors = 4

html_theme = "furo"
html_title = "opsloom"
html_show_sourcelink = False
html_copy_source = False
pygments_style = "default"
