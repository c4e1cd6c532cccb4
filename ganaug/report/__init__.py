"""The markdown report of a run folder and its figures."""

from ganaug.report.markdown import write_report

__all__ = ["write_report"]
