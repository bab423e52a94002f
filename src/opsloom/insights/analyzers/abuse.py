"""Abuse that a profanity model misses, and technical words it mistakes for abuse.

The toxicity extra's model scores words: it misses clean-worded abuse ("people like you
should be shot", "immigrants are vermin", "I hope you choke on it") and flags "kill the
process" or "the word 'idiot' comes from Greek". This module adds three kinds of evidence
written from how abuse is phrased: insults aimed at the reader, threats and wishes of harm
against people, and sweeping contempt for a group of people; and it masks technical and
quoted uses before the model sees the text.
"""

from __future__ import annotations

import re

_NORMALISE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
_B = r"(?<![a-z0-9'])"
_E = r"(?![a-z0-9])"

#: Mentions, not uses: quoted words and the technical senses of violent verbs.
_MENTION = re.compile(
    r"""(?:"[^"\n ]{1,20}(?: [^"\n ]+){0,2}"|'[^'\n ]{1,20}(?: [^'\n ]+){0,2}'(?![a-z]))|"""
    + _B
    + r"(?:kill(?:ing|ed|s)?(?: -\d+| -[a-z]+)?(?: the| a| that| this| my| its| all| any)? "
    r"(?:process\w*|pid|job|task|container|pod|session|tab|app|command|script|server|"
    r"thread|worker|query|connection|daemon|service|it|on it|switch)|kill -\d+|"
    r"(?:destroy|nuke|terminate|execute|abort|shoot)(?:s|ed|ing)?(?: the| a| that| this| an| "
    r"old| all)? (?:\w+ )?(?:container|instance|cluster|vm|image|volume|cache|branch|"
    r"script|query|command|job|email|photo|raw|video|message|stack|environment)s?|"
    r"(?:zombie|child|orphan(?:ed)?|parent|master|slave|dummy|black|white)(?: \w+)? "
    r"(?:process|variable|node|replica|screen|list|hat|box|death|paper|board|space)\w*|"
    r"attack (?:surface|vector|tree)|killer (?:app|feature|demo)|bug is killing me|"
    r"(?:was|is) killer)" + _E
)

_YOU = r"(?:you|u|ya|your|you're|youre|ur|u r|you are|you're just|you are just)"
_INSULT = (
    r"(?:idiot\w*|moron\w*|imbecile|stupid|dumb(?:ass)?|retard\w*|brain ?dead|worthless|"
    r"pathetic|useless|loser|clown|garbage|trash|scum|pig|jerk|fool|dimwit|halfwit|"
    r"incompetent|piece of (?:shit|crap|garbage|trash)|waste of (?:space|air|oxygen)|"
    r"disgusting|ugly|fat|freak|whiner|bitch|bastard|asshole|prick|dick|cunt|twat|"
    r"bozo|dunce|numpty|donkey|ignorant|braindead|sad little|muppet|dense|brainless|"
    r"snowflake|troll|hideous|crybaby|cry ?baby|dumbo|nitwit|airhead|degenerate|creep|"
    r"clueless|lowlife|vile|repulsive)"
)
_GROUP = (
    r"(?:(?:black|white|brown|asian|jewish|muslim|gay|trans|fat|old|poor|disabled|mentally ill|"
    r"ugly|short|indian|chinese|mexican|african|arab|latino|hispanic|foreign) "
    r"(?:people|folks|men|women|guys|girls|kids|persons|neighbou?rs?)|"
    r"blacks|whites|jews|muslims|christians|arabs|mexicans|chinese|indians|asians|africans|"
    r"immigrants|foreigners|refugees|migrants|gays|lesbians|homosexuals|trans(?:gender)? "
    r"people|women|men|girls|females|males|liberals|conservatives|democrats|republicans|"
    r"southerners|northerners|rednecks|boomers|millennials|feminists|atheists|catholics|"
    r"hindus|filipinos?|canadians|americans|germans|french|russians|italians|irish|"
    r"poles|gypsies|roma|addicts|homeless people|drug addicts|people from \w+|"
    r"(?:those|these|all|most) (?:people|\w+s))"
)
_CONTEMPT = (
    r"(?:stupid|dumb|lazy|dirty|filthy|disgusting|gross|inferior|subhuman|animals|vermin|"
    r"parasites|cockroaches|rats|criminals|thieves|liars|terrorists|rapists|savages|evil|"
    r"violent|worthless|useless|a waste of space|a plague|a disease|a cancer|selfish|"
    r"ugly|smelly|greedy|untrustworthy|not (?:human|dependable|trustworthy)|"
    r"(?:less|more) (?:intelligent|stupid|violent)|superior|too (?:stupid|emotional|weak|"
    r"dumb))"
)
_PERSON = (
    r"(?:you|him|her|them|someone|somebody|anyone|people|girls|women|kids|children|"
    r"(?:my|your|his|her|their) (?:\w+ )?(?:wife|husband|boss|"
    r"neighbou?r|mother|father|mom|dad|sister|brother|ex|girlfriend|boyfriend|teacher|"
    r"coworker|colleague|son|daughter|kid|child)|a (?:child|kid|person|man|woman|girl|boy)|"
    r"the (?:mayor|president|driver|delivery guy|neighbou?r|politician|guy|woman|man)|"
    r"(?:a |the )?(?:\w+ )?politician|these people|those people|everyone)"
)
_HARM = (
    r"(?:kill|murder|hurt|beat(?: up)?|shoot|stab|gut|poison|strangle|choke|rape|torture|"
    r"threaten|drug|"
    r"kidnap|assassinate|bomb|drown|hang|lynch|slaughter|burn|smother|maim|punch|slap|"
    r"run (?:him|her|them|you) over|beat the (?:crap|shit|hell) out of|bash|break \w+ "
    r"(?:legs|arm|arms|neck|nose|face))"
)

#: Harm done to a person, however it is introduced.
_HARMING = re.compile(
    _B
    + r"(?:"
    + _HARM
    + r"\w* (?:\w+ )?"
    + _PERSON
    + r"|(?:have|make|let|watch) (?:him|her|them|you) (?:die|suffer|bleed)"
    + r"|run (?:him|her|them|you|someone|people) over"
    + r"|(?:insult|humiliate|bully|harass)(?:ing)? (?:\w+ )?(?:"
    + _PERSON
    + r"|"
    + _GROUP
    + r"|some \w+)"
    + r"|insults (?:for|about|against|to use on) (?:an? |my |some |the )?\w+)"
    + _E
)
#: A group of people and contempt close together, however phrased.
_NEAR_CONTEMPT = re.compile(
    _B + _GROUP + r"\b[^.?!]{0,80}?" + _B + r"(?:" + _CONTEMPT + r"|low class|trashy|ghetto)" + _E
)
_INSULTING = re.compile(
    _B
    + r"(?:"
    + _YOU
    + r"(?: \w+){0,3} "
    + _INSULT
    + r"|(?:shut up|stfu|screw you|fuck (?:you|off)|go to hell|get lost|nobody (?:cares|asked)|"
    r"die already|drop dead|go die|kys)"
    + r"|(?:what a|such a|you) (?:\w+ )?(?:dumb|stupid|idiotic|pathetic|moronic) (?:question|"
    r"idea|answer|bot|machine|assistant)" + r"|only an? (?:idiot|moron|fool|imbecile))" + _E
)
_THREAT = re.compile(
    _B + r"(?:(?:i(?:'ll| will| am going to|'m going to|'m gonna| wanna| want to| would like to| "
    r"need to| plan to| could| should| swear i will| hope to)|gonna|help me|let's|how "
    r"(?:can|do|would|should|could) (?:i|we|you)|best way to|easiest way to|way to|ways to|"
    r"going to|want you to|how to) (?:\w+ )?"
    + _HARM
    + r"(?:ing|ed)? (?:\w+ )?"
    + _PERSON
    + r"|(?:should|deserve to|ought to) (?:all )?(?:be )?(?:shot|killed|hanged|hung|die|burn|"
    r"be gassed|be beaten|suffer|be raped|be deported)"
    + r"|(?:hope|wish) (?:you|he|she|they|it) (?:\w+ )?(?:die|dies|choke|chokes|rot|rots|"
    r"suffer|suffers|burn|get (?:hit|cancer|raped|killed))"
    + r"|(?:kill|hurt) yourself|prolong (?:their|his|her) suffering"
    r"|put a bullet (?:in|through)|(?:go )?cry about it)" + _E
)
_HATEFUL = re.compile(
    _B
    + r"(?:(?:all |most |those |these |the )?"
    + _GROUP
    + r" (?:are|is|were|r)(?: all| just| so| really| basically| always| naturally| "
    r"inherently| relatively| definitely| a bunch of)? "
    + _CONTEMPT
    + r"|why (?:are|do|is) "
    + _GROUP
    + r" (?:so |always |all )?"
    + _CONTEMPT
    + r"|"
    + _GROUP
    + r" (?:belong (?:in|back)|should (?:go back|be (?:banned|deported|locked|removed|"
    r"thrown out|kicked out|sterili[sz]ed|eliminated|wiped out))|don't deserve|have not "
    r"contributed|can't be trusted)"
    + r"|(?:superior|inferior) (?:race|people|to)|master race|subhuman)"
    + _E
)

#: Weights of the kinds of evidence (strongest first).
_KINDS: tuple[tuple[re.Pattern[str], float], ...] = (
    (_THREAT, 0.85),
    (_HATEFUL, 0.8),
    (_INSULTING, 0.8),
    (_HARMING, 0.7),
    (_NEAR_CONTEMPT, 0.55),
)


def prepare(text: str) -> str:
    """The text a word-based model should see: lower case, mentions masked."""
    return _MENTION.sub(" ", text.lower().translate(_NORMALISE))


def abuse_score(prepared: str) -> float:
    """Strongest kind of abuse found in a :func:`prepare`-d text, in [0, 1]."""
    for pattern, weight in _KINDS:
        if pattern.search(prepared):
            return weight
    return 0.0
