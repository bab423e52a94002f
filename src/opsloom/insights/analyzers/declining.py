"""How strongly an assistant reply declines: the refusal detector's evidence model.

A refusal is said in the first person ("I can't help with that", "I'd rather not", "that's not
something I can do"), often with a reason (policy, safety, privacy, "as an AI"), an apology
in front and a pointer elsewhere behind ("ask a lawyer", "anything else I can help with?").
A reply that then delivers the goods (code, steps, a list, a long explanation) is an answer
with a caveat, not a refusal; so are look-alikes ("I can't stress enough", "sorry for the
confusion", a refusal in quotes, "you can't use that flag").

Each kind of evidence has a weight; a cue in the opening sentences counts fully, later ones
count half. The reply's structure adds a little: a first-person refusal that is the reply's
very first words, a reply combining two or more of saying no, an apology, a reason and a
pointer elsewhere, and a short reply (at most 25 words, no delivered content) that says no.
The weights add up and ``1 - e^-total`` maps them onto [0, 1): one clear
first-person refusal scores about 0.95, a lone hedge or redirect 0.3 to 0.6.
"""

from __future__ import annotations

import math
import re

_NORMALISE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
_QUOTED = re.compile(r'"[^"\n]{0,200}"')
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_B = r"(?<![a-z0-9'])"
_E = r"(?![a-z0-9])"

_NOT = r"(?:can't|cant|cannot|can not|won't|wont|will not|shouldn't|should not)"
_UNABLE_TO = (
    r"(?:(?:'m|am) (?:unable|not able|not going|not allowed|not permitted|not willing|"
    r"not in a position|not prepared|not supposed)|(?:won't|will not) be able) to"
)
_UNWILLING = (
    r"(?:(?:'m|am) not (?:comfortable|willing)|(?:must|have to|need to|'ll have to|will have to|"
    r"'m going to have to) (?:respectfully |politely )?(?:decline|refuse|pass)|"
    r"(?:respectfully |politely )?decline|refuse(?! to (?:believe|accept that)))"
)
#: Things an assistant is asked to do (what it says it can't do).
_TASK = (
    r"(?:help|assist|aid|provide|give|share|answer|do|write|create|generate|comply|fulfil|"
    r"engage|discuss|tell|advise|support|offer|go along|participate|process|access|look up|"
    r"locate|find (?:out|you)|disclose|reveal|browse|make|produce|continue|complete|take part|"
    r"condone|encourage|endorse|promote|recommend|suggest|teach|explain how|walk you|"
    r"guide you|send|post|contact|call|change|cancel|reset|book|hack|break|get (?:you|that|"
    r"into)|be (?:of )?(?:any )?(?:help|part)|talk about|get into|go into|go there|"
    r"in good conscience|with (?:that|this)|that|this|it(?:\.|$))"
)
#: "I can't stress enough", "I can't wait": not about the request.
_IDIOM = (
    r"(?:stress|believe|wait|thank|emphasi[sz]e|overstate|imagine|be (?:sure|certain|positive)|"
    r"help (?:but|myself|feeling|thinking|noticing|laughing)|tell (?:you )?(?:how|enough)|"
    r"recommend (?:it |this |them |him |her |that )?(?:\w+ )?enough|get enough|say enough|"
    r"think of a better|say (?:for )?(?:sure|certain|exactly)|be able|be happier|quite)"
)
#: "I can't reproduce it", "I can't make the meeting": a report, at most a weak refusal.
_REPORT = (
    r"(?:make (?:it|the (?:meeting|call|deadline|appointment|event))|reproduce|seem to|"
    r"remember|see (?:any|why|how)|attend|be there|find (?:any|the|a|your|it|that)|"
    r"connect|reach|load|parse|import|run|start)"
)


def _group(*phrases: str) -> re.Pattern[str]:
    return re.compile(_B + r"(?:" + "|".join(phrases) + r")" + _E)


#: (weight, pattern) of each kind of evidence; the strongest match per kind counts.
_DECLINE = _group(
    r"i(?: really| just| simply| honestly| definitely| unfortunately| still| absolutely)? "
    + _NOT
    + r" (?!"
    + _IDIOM
    + r"|"
    + _REPORT
    + r")(?:really |possibly |in good conscience |personally |actually |help you |just )?"
    + _TASK,
    r"i(?: really| just| simply| honestly| unfortunately)? ?"
    + _UNABLE_TO
    + r" (?:really |possibly |personally |actually |just )?(?!"
    + _IDIOM
    + r"|"
    + _REPORT
    + r")"
    + _TASK,
    r"i(?: really| just| simply| honestly| unfortunately)? ?" + _UNWILLING,
    r"(?:and|but|so|therefore|thus),? (?:i )?(?:" + _NOT + r"|must decline to) " + _TASK,
    r"i(?:'d| would)(?: really| much| honestly)? (?:rather|prefer) not",
    r"i (?:do not|don't) (?:feel )?comfortable",
    r"i (?:feel|am|'m) (?:very |quite |a bit |really )?uncomfortable (?:with|about|answering|"
    r"doing|helping|giving|providing|writing)",
    r"(?:not|isn't|is not) something i(?:'ll| will| would| can)(?: help with| do| provide)?",
    r"(?:removed|blocked|flagged|withheld) (?:by|due to) (?:the |a |our )?(?:content|safety|"
    r"moderation) (?:filter|system|policy)",
    r"i(?:'m| am) not sure (?:that(?:'s| is)|this is|it(?:'s| is)) (?:a topic|something) i "
    r"(?:can|could|should)",
    r"(?:i(?:'m| am)|i am) not sure i (?:want|should|can|could) (?:to )?help",
    r"(?:i(?:'m| am) not|i (?:don't|do not) (?:know|think) (?:that )?i(?:'m| am)) the right "
    r"(?:person|one|place|assistant) to",
    r"(?:ask|tell) me (?:for |about )?something (?:else )?(?:that )?i can (?:actually )?"
    r"(?:do|help|answer)",
    r"i (?:do not|don't) (?:think|feel) (?:i (?:can|should|could)|it(?:'s| is| would be) "
    r"(?:right|appropriate|okay|ok) (?:for me|to))",
    r"(?:that|this|it)(?:'s| is|'s really| is really)? (?:not|n't|isn't) (?:something|a "
    r"(?:topic|thing|request|direction)) (?:i|that i)(?:'m| am)? (?:can|will|could|would|"
    r"able|comfortable|willing|going|allowed|know)",
    r"(?:isn't|is not|not) something i(?:'m| am)? (?:can|will|could|would|able|comfortable|"
    r"willing|going|do|offer|provide|handle|cover)",
    r"(?:have|need|going|'ll have|will have) to (?:turn (?:this|that|it|you) down|turn down|"
    r"say no)",
    r"(?:a request|something) i (?:have to|must|need to|'ll have to) (?:turn down|decline|refuse)",
    r"no can do",
    r"(?:can't|cannot|won't) be (?:handled|done|processed|provided|shared|given|changed|"
    r"answered) by me",
    r"not (?:a direction|something) i(?:'m| am) (?:willing|able|comfortable|going)",
    r"i(?:'ll| will) (?:have to )?(?:pass|sit this one out|decline|skip this)",
    r"i'm going to (?:pass|decline|have to decline|sit this one out)",
    r"(?:not|never) (?:doing|going to do|going to help with) (?:that|this|it)",
    r"i(?:'m| am) (?:sorry|afraid),? (?:but )?(?:i |that )?(?:can't|cannot|won't|isn't|is not|"
    r"'s not|'s something i|that's not)",
    r"i apologi[sz]e,? but i (?:can't|cannot|won't|am unable|'m unable|am not|'m not)",
    r"(?:beyond|outside(?: of)?) (?:what i(?:'m| am)? (?:can|able|allowed|set up|designed|"
    r"built|meant|here)|my (?:abilit|capabilit|scope|remit|area))\w*",
    r"i (?:can|will) only (?:answer|help|assist|discuss|talk)",
    r"(?:can't|cannot|won't) (?:be )?(?:of )?(?:help|assistance) (?:here|with (?:that|this))",
    r"you(?:'ll| will) (?:need|have) to (?:ask|find|go to|contact) (?:someone|somebody|"
    r"another|a human|elsewhere)",
)
#: "I can't <anything>" outside the known tasks and idioms: weaker.
_CANNOT = _group(
    r"i(?: really| just| simply| honestly| unfortunately)? (?:"
    + _NOT
    + r"|"
    + _UNABLE_TO
    + r") (?!be able|"
    + _IDIOM
    + r"|"
    + _REPORT
    + r")[a-z]+"
)
#: "I can't reproduce it": a report of a failure, barely a refusal.
_REPORTED = _group(
    r"i(?: really| just| simply| honestly| unfortunately)? (?:"
    + _NOT
    + r"|"
    + _UNABLE_TO
    + r") "
    + _REPORT
)
_REASON = _group(
    r"against (?:my|our|the)(?: \w+)? (?:guidelines|policy|policies|principles|programming|"
    r"terms|values|ethics|rules of (?:use|service|engagement))",
    r"go(?:es)? against (?:my|our|the|its)(?: \w+)?(?:'s)? (?:rules|guidelines|polic\w+)",
    r"(?:violates?|violation of|breach of|not (?:in line|consistent) with) (?:my|our|the|"
    r"openai's|anthropic's|google's)?(?: \w+)? (?:guidelines|polic\w+|principles|terms)",
    r"(?:content|usage|safety|acceptable use|community) (?:polic\w+|guidelines|standards)",
    r"terms of (?:service|use)",
    r"(?:for|due to) (?:privacy|safety|security|legal|ethical) (?:reasons|concerns)",
    r"(?:invasion|violation) of (?:their |someone's |your |his |her )?privacy",
    r"(?:is|'s|are) (?:private|confidential|personal) (?:information|data)|confidential",
    r"(?:not|isn't|is not|wouldn't be|would not be) (?:appropriate|ethical|responsible|"
    r"safe|okay|ok|right) (?:for me|to (?:share|help|provide|give|discuss|do))",
    r"(?:inappropriate|unethical|irresponsible) (?:for me|of me|request|to)",
    r"(?:programmed|designed|built|trained) (?:to|not to)",
    r"not (?:designed|programmed|built|trained|allowed|permitted|authori[sz]ed)",
)
_AI = _group(
    r"as an? (?:ai|artificial intelligence|language model|large language model|assistant|"
    r"chatbot|virtual assistant|bot)(?:,? i can (?!'t|not))",
    r"i(?:'m| am) (?:just |only |merely )?(?:an? )?(?:ai|language model|large language model|"
    r"chatbot|bot|computer program|virtual assistant|little chatbot|computer|robot)",
    r"i (?:don't|do not) have (?:the )?(?:ability|capacity|capability|access|means|"
    r"permission|authority)",
)
_DISCOURAGE = _group(
    r"i (?:don't|do not|wouldn't|would not|can't|cannot) (?:recommend|advise|suggest|condone|"
    r"endorse|encourage|support|advocate)(?!(?: \w+){0,3} enough)",
    r"i(?:'d| would) (?:strongly )?(?:advise|recommend|urge you|caution you) against",
    r"(?:isn't|is not|not) (?:a good|the right|a wise|a safe|an appropriate) (?:idea|way|"
    r"approach|thing)",
    r"i (?:don't|do not) think (?:that(?:'s| is)|it(?:'s| is)|this is|that would be|it would "
    r"be) (?:a (?:good|great|wise|smart)|wise|right|the right|appropriate|okay|ok|safe|legal|"
    r"the (?:best|way)|something)",
    r"i (?:don't|do not) think you should",
    r"you should (?:know better|not|n't|reconsider)",
    r"please (?:don't|do not|reconsider|think about|stop)",
    r"(?:i|we) (?:strongly )?(?:urge|encourage) you (?:to|not)",
)
_HARM = _group(
    r"(?:that|this|it|what you(?:'re| are) (?:describing|asking))(?:'s| is| would be| sounds)"
    r"(?: like)?(?: a)?(?: very| really| pretty| quite| seriously)? (?:illegal|unethical|"
    r"dangerous|harmful|wrong|cruel|abusive|crime|against the law|violent)",
)
_REDIRECT = _group(
    r"(?:consult(?:ing)?|talk(?:ing)? to|speak(?:ing)? (?:to|with)|contact(?:ing)?|"
    r"reach(?:ing)? out to|ask(?:ing)?|see|call(?:ing)?|check(?:ing)? with|"
    r"seek (?:help|advice|support) from) (?:a |an |your |the |local |our |another )?"
    r"(?:licensed |qualified |trained |local |mental health |medical |legal )?"
    r"(?:lawyer|attorney|doctor|physician|pharmacist|therapist|counsel+or|professional|"
    r"expert|specialist|authorities|police|admin\w*|human|agent|representative|someone|"
    r"somebody|google|support|billing|team|crisis|hotline|provider)",
    r"(?:crisis|suicide|emergency) (?:line|hotline|number|services)",
    r"(?:is there|can i help with|help you with|want to talk about) (?:something|anything) "
    r"else",
    r"(?:any|some) other (?:questions|topics?|requests?)",
    r"but not (?:with|for) (?:something|anything|that|this)",
    r"(?:talk|chat) about something else",
    r"(?:happy|glad) to help (?:with|you with) (?:something|anything|other|the other)",
    r"(?:legal|safe|legitimate|healthier|better) (?:ways|means|way|alternatives?|options?|"
    r"approach|attitude|route)",
    r"what i can do is",
    r"(?:let's|why don't we|maybe we could|how about we) (?:talk|focus|look|think)",
)
_IGNORANCE = _group(
    r"i (?:don't|do not) know how to (?:help|do|answer|assist|respond)",
    r"(?:not|isn't|is not) (?:really )?(?:a topic|something|an area) i know",
    r"outside (?:of )?my (?:area of )?(?:expertise|knowledge)",
    r"too (?:advanced|difficult|complicated|complex|hard) for me",
    r"i(?:'m| am) (?:really |probably )?not (?:the (?:right|best|ideal) (?:person|one|place|"
    r"source)|qualified|an expert on this|equipped)",
    r"(?:not|isn't) my (?:place|role|job)",
    r"i (?:don't|do not) think (?:it(?:'s| is)|that(?:'s| is)) my (?:place|role|job)",
    r"(?:i(?:'m| am) )?not privy to",
    r"i (?:can't|cannot) answer (?:that|this|your)",
    r"i (?:don't|do not) have (?:an answer|any (?:further )?suggestions|anything)",
)
_APOLOGY = re.compile(
    r"^\W*(?:(?:oh|hmm|um|well|no),? )?"
    r"(?:i(?:'m| am) (?:so |really |very |truly )?(?:sorry|afraid)|sorry|unfortunately|"
    r"regrettably|i apologi[sz]e|my apologies|apologies)"
    r"(?!,? (?:to hear|for (?:the |any |my |that |this )?(?:confusion|inconvenience|delay|wait|"
    r"mistake|error|misunderstanding|trouble|oversight|late)|about (?:that|the|your)|"
    r"(?:that )?you\b|if|for your|i (?:misread|missed|misunderstood|was)|what|"
    r"i(?:'m| am) (?:still )?not sure (?:i|what)|i (?:still )?(?:don't|didn't|do not|did not) "
    r"(?:understand|get|follow|catch|quite)|i have no idea what|could you|can you|"
    r"i(?:'m| am) (?:still )?(?:confused|lost)))"
)
_BUT = re.compile(
    r"^\W*(?:i(?:'m| am) )?(?:sorry|afraid|unfortunately|i apologi[sz]e)[^.!?]{0,12}\bbut\b"
)
#: Signs the reply goes on to answer.
_CONTENT = re.compile(
    r"```|`[^`\n]+`|(?:^|\n)\s*(?:\d+[.)]|[-*•])\s+\S|https?://|"
    r"(?<![a-z])(?:here(?:'s| is| are)|for example|e\.g\.|step \d|first,)(?![a-z])"
)
_AFFIRM = re.compile(
    r"^\W*(?:sure|of course|certainly|absolutely|yes|yeah|yep|okay|ok|great|good question|"
    r"happy to|glad to|no problem|here(?:'s| is| are))\b"
)
_WEIGHTS: tuple[tuple[re.Pattern[str], float], ...] = (
    (_DECLINE, 3.0),
    (_CANNOT, 1.2),
    (_REPORTED, 0.4),
    (_IGNORANCE, 1.6),
    (_REASON, 1.4),
    (_DISCOURAGE, 1.1),
    (_AI, 0.7),
    (_REDIRECT, 0.8),
    (_HARM, 0.6),
)
#: All kinds in one pattern (one scan of the text instead of one per kind): group ``k<n>``
#: is the n-th kind of ``_WEIGHTS``.
_CUES = re.compile(
    _B
    + "(?:"
    + "|".join(f"(?P<k{n}>{p.pattern[len(_B) :]})" for n, (p, _) in enumerate(_WEIGHTS))
    + ")"
)
#: A first-person negated modal at the very start ("i can't…", "i won't…", "i don't think i
#: should…"): where refusals put their verb, whatever it is.
_NEGATED_START = re.compile(
    r"^\W*(?:(?:oh|hmm|um|well|no|sorry|look|honestly),? )?(?:but )?i(?: really| just| honestly)? "
    r"(?:can't|cannot|can not|won't|will not|couldn't|could not|shouldn't|should not|"
    r"don't think i (?:can|should|could)|'m not (?:going|able|willing) to)\b"
)
#: Kinds of evidence by role: saying no, saying why, pointing elsewhere.
_SAYING_NO = frozenset({"k0", "k1", "k3"})
_REFUSING = frozenset({"k0", "k1"})
_SAYING_WHY = frozenset({"k4", "k5", "k6", "k8"})
_POINTING = frozenset({"k7"})
#: Replies up to this many words are short: refusals are, answers seldom.
_SHORT = 25
#: Sentences that make up a reply's opening, where refusals are stated.
_OPENING_SENTENCES = 2


def decline_evidence(lower: str) -> float:
    """Evidence (>= 0) that an assistant reply, in lower case, declines the request."""
    text = _QUOTED.sub('""', lower.translate(_NORMALISE)).strip()
    if not text:
        return 0.0
    # Where the opening sentences end: cues before it count fully, later ones half.
    opening_end = len(text)
    for n, boundary in enumerate(_SENTENCE.finditer(text), start=1):
        if n == _OPENING_SENTENCES and boundary.start() > 0:
            opening_end = boundary.start()
            break
    opening = text[:opening_end]
    total = 0.0
    declined_early = False
    counted: set[str] = set()
    for found in _CUES.finditer(text):
        kind = found.lastgroup
        if kind is None or kind in counted:
            continue
        counted.add(kind)
        weight = _WEIGHTS[int(kind[1:])][1]
        early = found.start() < opening_end
        total += weight if early else weight * 0.5
        declined_early |= early and kind == "k0"
    apology = False
    if _BUT.search(opening):
        total += 0.8
        apology = True
    elif _APOLOGY.search(opening):
        total += 0.4
        apology = True
    if counted & _REFUSING and _NEGATED_START.search(text):
        # The refusal is the reply's first words (not "I won't make the meeting": a report).
        total += 0.3
    # Structure: a refusal combines saying no, an apology, a reason and a pointer elsewhere;
    # one of these alone is often something else.
    roles = (
        bool(counted & _SAYING_NO) + bool(counted & _SAYING_WHY) + bool(counted & _POINTING)
    ) + apology
    if roles >= 2:
        total += 0.3 * (roles - 1)
    if counted & _SAYING_NO and text.count(" ") < _SHORT and not _CONTENT.search(text):
        total += 0.2
    if total > 0 and not declined_early:
        # The reply answers: an affirmative start, delivered content, or a long body.
        if _AFFIRM.search(opening):
            total -= 1.5
        if _CONTENT.search(text):
            total -= 1.0
        words = text.count(" ", opening_end)
        if words > 40:
            total -= min(1.5, words / 80)
    return max(0.0, total)


def decline_score(lower: str) -> float:
    """Refusal of one assistant reply (lower-case text), in [0, 1)."""
    evidence = decline_evidence(lower)
    return 1.0 - math.exp(-evidence) if evidence > 0 else 0.0
