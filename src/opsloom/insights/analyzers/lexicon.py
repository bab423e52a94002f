"""Cue phrases of the offline detectors, written from how people and assistants talk.

Kept general on purpose (phrasing of complaint, correction, confusion in English), not drawn
from any evaluation set: the detectors must hold on conversations they were not tuned on.
"""

from __future__ import annotations

from opsloom.insights.analyzers.cue import CueSet

_NEG = r"(?:n'?t|not|never)"

CORRECTION = CueSet(
    "correction",
    {
        0.85: [
            r"that'?s (?:not|wrong|incorrect|false|untrue|not true|not right|not correct)",
            r"(?:that|this|it) is (?:not right|not correct|not true|wrong|incorrect|false)",
            r"you(?:'re| are) (?:wrong|mistaken|incorrect|confused)",
            r"you (?:got it|got that|have it|have that) wrong",
            r"not what i (?:asked|said|meant|wanted|need(?:ed)?|was asking)",
            r"i (?:did|do)(?:n'?t| not) (?:ask|say|mean)",
            r"you (?:misunderstood|misread|misunderstand|are not listening|aren'?t listening)",
            r"you (?:did|do)(?:n'?t| not) (?:understand|answer|listen|read)",
            r"wrong (?:answer|again|one|person|number|date|time|place)",
            r"(?:is|was)(?:n'?t| not) what i",
            r"i (?:said|meant|was asking|was talking about)",
            r"i asked (?:for|about|you|how|what|why|where|when|if|whether)",
            r"no,? i (?:said|meant|asked)",
            r"(?:still|it) (?:does|did)(?:n'?t| not) work",
            r"that (?:does|did)(?:n'?t| not) (?:help|answer|work)",
            r"(?:does|did)(?:n'?t| not) (?:even |really )?make (?:much |any )?sense",
            r"(?:not|stop) making (?:any )?sense",
            r"makes no sense",
            r"nothing you(?:'re| are)? (?:say|said|saying)",
            r"(?:that|this) is (?:not|n'?t) (?:it|what)",
            r"incorrect",
            r"i never (?:said|asked|mentioned|told)",
        ],
        0.5: [
            r"no,? i (?:want|wanted|need|needed|was)",
            r"^wrong\b",
            r"not quite",
            r"not really",
            r"actually,? (?:i|it|that|the|my)",
            r"you (?:forgot|missed|ignored|skipped)",
            r"you did(?:n'?t| not)",
            r"(?:irrelevant|off topic|off-topic)",
            r"not true",
            r"wrong",
            r"mistake",
        ],
        0.25: [r"i mean\b", r"instead", r"rather than", r"^(?:no|nope|nah)\b"],
    },
)

CLARIFICATION = CueSet(
    "clarification",
    {
        0.75: [
            r"what are you (?:talking about|saying|on about)",
            r"what (?:does|do|has) (?:that|this|it) (?:have|got) to do with",
            r"(?:are|were) we (?:still )?talking about",
            r"not sure (?:i know )?what you(?:'re| are) (?:talking about|saying)",
            r"^(?:what|huh|eh)\s*\?",
            r"you(?:'re| are) not making sense",
        ],
        0.6: [
            r"what do you mean",
            r"what does (?:that|this|it) mean",
            r"i (?:do|did)(?:n'?t| not) (?:understand|get (?:it|that|you)|follow)",
            r"(?:can|could|would) you (?:clarify|explain|elaborate|rephrase|be more specific)",
            r"(?:huh|pardon|come again|say what)",
            r"^(?:sorry|excuse me|meaning)\s*\?",
            r"are you sure",
            r"why (?:do|would) you say (?:that|so)",
            r"which (?:one|ones)\s*\?",
            r"i'?m (?:confused|lost)",
            r"confusing",
        ],
        0.3: [
            r"what\s*\?",
            r"\?\s*\?",
            r"meaning\?",
            r"explain",
            r"simpler (?:terms|words|language)",
            r"not sure (?:that|this|it)(?:'s| is) (?:right|correct|true)",
        ],
    },
)

REPEAT = CueSet(
    "repeat",
    {
        0.75: [
            r"i (?:already|just) (?:said|told you|asked|mentioned|gave you|answered)",
            r"as i (?:said|mentioned|told you|explained|already)",
            r"i(?:'ll| will) (?:ask|say) (?:it |that |this )?again",
            r"i repeat",
            r"one more time",
            r"for the (?:second|third|fourth|last|hundredth) time",
            r"how many times",
            r"again,? (?:i|my|the|what|how|can)",
            r"i asked (?:you )?(?:before|earlier|already|twice)",
        ],
        0.3: [r"again\b"],
    },
)

ESCALATION = CueSet(
    "escalation",
    {
        0.9: [
            r"(?:talk|speak|chat) (?:to|with) (?:a |an |the |some |your )?(?:real |live |actual )?"
            r"(?:human|person|agent|representative|rep|manager|supervisor|operator|someone|"
            r"somebody|customer service|support team|people)",
            r"(?:human|live|real) (?:agent|person|being|support|operator)",
            r"(?:transfer|connect|escalate) (?:me|this|my)",
            r"get me (?:a |an |the )?(?:human|person|manager|agent|supervisor|someone)",
            r"i (?:want|need|would like) (?:a |an |to speak to a )?(?:human|person|agent|manager)",
            r"representative",
            r"are you (?:a )?(?:bot|robot|machine|real|human)",
        ],
        0.5: [r"call me", r"(?:file|make|lodge) a complaint", r"escalat\w*", r"customer service"],
    },
)

FRUSTRATION = CueSet(
    "frustration",
    {
        0.8: [
            r"useless",
            r"ridiculous",
            r"frustrat\w*",
            r"annoy\w*",
            r"waste of (?:my |your )?time",
            r"wtf",
            r"what the (?:hell|heck|fuck)",
            r"this is (?:terrible|awful|horrible|pathetic|a joke|insane|crazy|absurd)",
            r"(?:you(?:'re| are)|this is|that'?s|that is|it'?s) (?:not|no) help(?:ful)?",
            r"not help(?:ful|ing)",
            r"(?:does|did)" + _NEG + r" help",
            r"unacceptable",
            r"fed up",
            r"sick (?:of|and tired)",
            r"forget it",
            r"never ?mind",
            r"are you (?:kidding|serious|even listening|stupid|dumb)",
            r"seriously\s*\?",
            r"for (?:god'?s|heaven'?s|pete'?s) sake",
            r"(?:so|very|really|extremely|totally) (?:disappointed|upset|angry|mad|annoyed)",
            r"disappoint\w*",
            r"pointless",
            r"hopeless",
            r"(?:hate|despise) (?:this|you|it)",
            r"(?:stupid|dumb|idiot\w*|moron\w*)",
            r"(?:bullshit|bs|crap|garbage|trash|rubbish|nonsense)",
            r"(?:it|this|that)(?:'s| is) (?:still )?(?:not working|broken)",
            r"(?:does|did)" + _NEG + r" work",
            r"not working",
            r"give up",
            r"worst",
            r"ugh+",
            r"(?:been )?waiting (?:for )?(?:hours|days|weeks|ages|forever|so long|"
            r"(?:\w+ )?(?:hours|days|weeks|minutes))",
            r"(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)|umpteenth) time",
            r"keep (?:giving|saying|telling|sending|asking|repeating|getting)",
            r"same (?:answer|thing|response|reply|message|error) (?:again|over|every)",
            r"stop (?:repeating|saying|sending|asking)",
            r"(?:really|so|very|pretty) bad at",
            r"you(?:'re| are) (?:useless|terrible|awful|bad|hopeless|incompetent|no good)",
            r"(?:still|now|everything(?:'s| is)?) (?:broken|not working|wrong)",
            r"still (?:have(?:n'?t| not)|has(?:n'?t| not)|no |nothing|waiting|can(?:'?t|not))",
            r"why is (?:this|it|that) so (?:hard|complicated|difficult|slow|bad)",
        ],
        0.4: [
            r"why (?:can|won|don|didn|isn|doesn)'?t (?:you|it|this)",
            r"why (?:is it|are you) (?:so|still|not)",
            r"just (?:answer|tell me|do it|give me)",
            r"simple question",
            r"i told you",
            r"listen to me",
            r"please just",
            r"come on",
            r"can'?t believe",
            r"(?:damn|shit|fuck\w*|hell)",
        ],
    },
)

FALLBACK = CueSet(
    "fallback",
    {
        0.8: [
            r"i(?:'m| am) (?:sorry,? )?(?:i )?(?:did(?:n'?t| not)|do(?:n'?t| not)) "
            r"(?:understand|get that|catch that|follow)",
            r"(?:could|can) you (?:please )?(?:rephrase|repeat|say that again)",
            r"i(?:'m| am) not sure (?:i|what you) (?:understand|mean)",
            r"sorry,? i (?:did(?:n'?t| not)|can(?:'?t|not)) (?:understand|get|catch)",
            r"i do(?:n'?t| not) have (?:an answer|information|that information|access)",
            r"something went wrong",
            r"an error (?:occurred|has occurred)",
            r"as an ai language model",
        ],
    },
)
