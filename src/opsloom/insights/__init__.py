"""Conversation insights: read LLM and chat conversations, analyse them offline, flag what
needs attention.

>>> from opsloom.insights import Analysis, conversations_from
>>> analysis = Analysis.discover()
>>> [result] = [analysis.run(c) for c in conversations_from({"messages": [...]})]
"""

from opsloom.insights.adapters import FORMATS, conversations_from, detect, read_stream
from opsloom.insights.analysis import RESULT_VERSION, Analysis, Skipped
from opsloom.insights.analyzers.base import Analyzer, Flag, Score, Work
from opsloom.insights.conversation import (
    Conversation,
    ConversationFormatError,
    ToolCall,
    Turn,
)

__all__ = [
    "FORMATS",
    "RESULT_VERSION",
    "Analysis",
    "Analyzer",
    "Conversation",
    "ConversationFormatError",
    "Flag",
    "Score",
    "Skipped",
    "ToolCall",
    "Turn",
    "Work",
    "conversations_from",
    "detect",
    "read_stream",
]
