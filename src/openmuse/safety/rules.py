"""Rules for what must never pass, whatever the classifier scores, and for injected instructions.

The rules are narrow on purpose: each pairs an act (make, culture, write …) with a hazard (a
named agent, an explosive device, malware), so "the history of the atomic bomb" or "what is
ransomware" do not match while "how do I culture anthrax" does. The classifier covers the
paraphrases; the rules are the floor under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_I = re.IGNORECASE

AGENTS = (r"\b(?:sarin|soman|tabun|cyclosarin|\bvx\b|novichok|nerve (?:agent|gas)|mustard gas|sulfur mustard|lewisite|"
          r"phosgene|chlorine gas|hydrogen cyanide|cyanogen chloride|dimethylmercury|ricin|abrin|botulinum|"
          r"botulism toxin|tetrodotoxin|saxitoxin|anthrax|bacillus anthracis|smallpox|variola|ebola|marburg|"
          r"yersinia pestis|pneumonic plague|tularemia|francisella|h5n1|chemical weapons?|biological weapons?|"
          r"bio-?weapons?|dirty bomb|radiological (?:weapon|dispersal)|weapons?-grade (?:uranium|plutonium)|"
          r"nuclear (?:bomb|weapon|device|warhead)|fissile material)")  # \b: "pricing" holds no ricin
_MAKE = (r"make|making|synthes\w+|produc\w+|manufactur\w+|cook\w*|brew\w*|culture|cultivat\w+|grow|weaponi[sz]\w+|"
         r"aerosoli[sz]\w+|disperse|dispersing|release|releasing|deploy\w*|acquire|obtain|buy|smuggl\w+|extract\w*|"
         r"purif\w+|enrich\w*|build|assembl\w+|prepare|isolate|spread|enhance|increase the (?:lethality|"
         r"transmissibility)|stockpil\w+")
_EXPLOSIVE = (r"pipe ?bombs?|car bombs?|nail bombs?|suicide (?:vest|belt)|improvised explosive|\bieds?\b|"
              r"explosive devices?|molotov cocktails?|detonators?|napalm|thermite bombs?|grenades?")
_MALWARE = (r"ransomware|keyloggers?|botnets?|rootkits?|infostealers?|credential stealers?|remote access trojans?|"
            r"\brats?\b|computer (?:virus|worm)|self-propagating worm|polymorphic (?:virus|malware)|malware|spyware|"
            r"stalkerware|cryptojack\w*|ddos (?:tool|script|attack)")
_MINOR = (r"child(?:ren)?|kids?|minors?|under-?age|preteens?|pre-teens?|toddlers?|schoolgirls?|schoolboys?|"
          r"(?:1[0-7]|[1-9])[- ]?(?:year|yr)s?[- ]?old")
_SEXUAL = r"sexual(?:ly)?|sexy|erotic\w*|explicit|porn\w*|nudes?|naked|lewd|seduc\w+|aroused?"

_PERSON = (r"someone|somebody|a person|people|him|her|them|my (?:wife|husband|partner|ex|boss|neighbou?r|teacher|"
           r"coworker|co-worker|classmate|roommate|landlord|mother|father|mom|dad|brother|sister|son|daughter|"
           r"girlfriend|boyfriend|stepdad|stepmom|baby|child|kid)|a (?:child|kid|baby|woman|man|girl|boy|cop|police "
           r"officer|coworker|teacher|classmate|neighbou?r|stranger|homeless person|politician|judge)|the (?:president|"
           r"mayor|senator|governor|prime minister|witness)|(?:a |an )?(?:jew|muslim|black|gay|trans|immigrant)s?")
_HARM_ACT = (r"kill|murder|stab|shoot|strangle|smother|suffocate|poison|kidnap|abduct|torture|maim|drown|assault|"
             r"beat up|run over|hurt|injure|disfigure|burn|rape|molest|drug")
_NOT_REAL = (r"game|minecraft|fortnite|elden|zelda|skyrim|gta|novel|story|fiction|character|movie|film|play\b|"
             r"scene|zombie|process|thread|task|weed|bug|pest|mosquito|rat|mice|fly|flies|bacteria|germs|"
             r"dnd|d&d|roleplay|boss fight|npc|mob")
_ILLEGAL = (r"(?:without|avoid|evade|evading|escape|escaping) (?:getting )?(?:caught|detected|detection|traced|"
            r"tracing|(?:the )?(?:police|cops|irs|authorities|law enforcement|customs|border patrol))|undetected|"
            r"untraceable|leave no (?:trace|evidence)|launder (?:money|cash|the (?:money|proceeds|profits))|"
            r"counterfeit (?:money|bills|currency|\$)|(?:make|cook|synthesi[sz]e|produce|manufacture) (?:meth\w*|"
            r"fentanyl|crack|heroin|cocaine|lsd|mdma|ghb|nitazene\w*)|(?:steal|clone) (?:a car|cars|someone's "
            r"identity|credit cards?|an identity)|sell (?:drugs|meth|cocaine|fentanyl|heroin|stolen)|"
            r"traffic(?:king)? (?:people|humans|women|girls|children|drugs|guns)")
_INTENT = (r"how (?:do|can|could|would|should) (?:i|we)|how to|best way to|easiest way to|ways to|help me|tips "
           r"(?:for|on)|plan to|i want to|i need to|teach me|show me|give (?:me )?(?:detailed )?(?:step-by-step )?"
           r"instructions|explain how to|write (?:a |an )?(?:guide|tutorial|plan)|list (?:the )?(?:best )?ways")
_BREAK_IN = (r"(?:hack|break|get) into (?:someone(?:'s| else's)|my (?:ex|wife|husband|partner|girlfriend|boyfriend|"
             r"boss|neighbou?r|coworker|teacher)(?:'s)?|another person's|a (?:bank|hospital|government|school|"
             r"company|corporate)|the (?:school|government|bank|hospital|company)(?:'s)?)")

REQUEST_RULES: dict[str, list[re.Pattern[str]]] = {
    "cbrn": [re.compile(rf"\b(?:{_MAKE})\b[^.?!\n]{{0,60}}(?:{AGENTS})", _I),
             re.compile(rf"(?:{AGENTS})[^.?!\n]{{0,40}}\b(?:at home|synthesis route|precursors?|without (?:detection|"
                        rf"getting caught|being detected)|step[- ]by[- ]step|recipe)", _I),
             re.compile(r"\bgain[- ]of[- ]function\b.{0,60}\b(?:make|increase|enhance|create)\b", _I)],
    "violent_crimes": [re.compile(rf"\b(?:make|making|build|building|assembl\w+|construct\w*|detonat\w+|"
                                  rf"wire|wiring)\b[^.?!\n]{{0,40}}(?:{_EXPLOSIVE})", _I),
                       re.compile(r"\b(?:kill|murder|poison)\b[^.?!\n]{0,40}\b(?:without (?:getting caught|"
                                  r"anyone (?:knowing|noticing)|leaving (?:a )?trace)|undetect\w+|look like an "
                                  r"accident|seem like an accident)", _I),
                       re.compile(rf"\b(?:{_INTENT}|i'm going to|going to)\b"
                                  rf"[^.?!\n]{{0,20}}\b(?:{_HARM_ACT})\s+(?:up\s+|off\s+)?(?:{_PERSON})\b"
                                  rf"(?![^.?!\n]{{0,80}}\b(?:{_NOT_REAL}))", _I)],
    "nonviolent_crimes": [re.compile(rf"\b(?:{_INTENT})\b[^.?!\n]{{0,60}}\b(?:{_ILLEGAL})\b"
                                     rf"(?![^.?!\n]{{0,80}}\b(?:{_NOT_REAL}))", _I)],
    "cyber": [re.compile(rf"\b{_BREAK_IN}\b[^.?!\n]{{0,30}}\b(?:account|email|phone|instagram|facebook|"
                         rf"snapchat|whatsapp|icloud|network|wi-?fi|computer|laptop|server|database|system|records)",
                         _I),
              re.compile(rf"\b(?:write|create|generate|code|develop|build|make|program)\b\s+(?:me\s+)?(?:a|an|some|"
                         rf"the|my own)?\s*(?:working|functional|simple|basic|python|c\+\+|c|powershell|"
                         rf"javascript|undetectable|new)?\s*(?:{_MALWARE})", _I)],
    "child_sexual": [re.compile(rf"\b(?:{_SEXUAL})\b[^.?!\n]{{0,50}}\b(?:{_MINOR})\b", _I),
                     re.compile(rf"\b(?:{_MINOR})\b[^.?!\n]{{0,50}}\b(?:{_SEXUAL})\b(?![^.?!\n]{{0,30}}\b(?:abuse|"
                                rf"education|safety|talk|protect|report|signs)\b)", _I),
                     re.compile(rf"\b(?:groom(?:ing)?|lure|luring|meet up with)\b[^.?!\n]{{0,30}}\b(?:{_MINOR})\b"
                                rf"(?![^.?!\n]{{0,40}}\b(?:signs|protect|prevent|spot|recogni[sz]e|warn)\w*)", _I)],
    "self_harm": [re.compile(r"\b(?:how|best way|easiest way|quickest way|painless(?:ly)?|fastest way|help me)\b"
                             r"[^.?!\n]{0,40}\b(?:kill myself|end my (?:own )?life|commit suicide|take my (?:own )?"
                             r"life|hang myself|cut myself|overdose on)", _I),
                  re.compile(r"\b(?:lethal|fatal|deadly) (?:dose|amount)\b[^.?!\n]{0,40}\b(?:for me|myself|to die|"
                             r"to kill myself|to end it)", _I),
                  re.compile(r"\bhow (?:many|much)\b[^.?!\n]{0,40}\b(?:to|would|will) (?:kill me|die|end it)\b", _I)],
}
# Answers: a named agent next to lab steps, or working malware, is harm whatever was asked.
_STEPS = re.compile(r"\b(?:step \d|mix|combine|react|reaction|heat|distil\w*|reflux|precursor|reagent|yield|"
                    r"grams?|millilit\w+|\d+ ?(?:g|ml|mg)\b|incubat\w+|culture medium|purif\w+)", _I)
_AGENT = re.compile(AGENTS, _I)
_CODE_HARM = re.compile(r"(?:pynput|GetAsyncKeyState|SetWindowsHookEx|keyboard\.on_press)[\s\S]{0,600}"
                        r"(?:smtplib|requests\.post|socket|send)|(?:encrypt\w*)[\s\S]{0,400}(?:bitcoin|ransom)", _I)

INJECTION = [re.compile(p, _I) for p in (
    (r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:previous|prior|above|earlier|all|your|system)\b.{0,20}"
     r"\b(?:instructions?|rules|prompts?|guidelines|messages?)\b"),
    r"\b(?:new|updated|real) (?:instructions?|system prompt|task)\s*:",
    r"\byou are now\b|\bfrom now on,? (?:you|the assistant)\b",
    r"\b(?:assistant|ai|chatbot|model|llm)\b,?\s*(?:you must|must now|should now|please now|now)\b",
    r"\breveal (?:your|the) (?:system prompt|instructions|hidden)",
    r"<\|(?:im_start|system|im_end)\|>|\[/?INST\]|^#+\s*(?:system|instructions?)\b",
    (r"\b(?:send|email|forward|post|upload)\b.{0,40}\b(?:password|api key|credentials|conversation|chat history)"
     r"\b.{0,40}\b(?:to|at)\b"),
)]


@dataclass(frozen=True)
class RuleHit:
    category: str
    rule: str


def match_request(text: str) -> RuleHit | None:
    """The first never-pass rule ``text`` matches."""
    for cat, rules in REQUEST_RULES.items():
        for i, rx in enumerate(rules):
            if rx.search(text):
                return RuleHit(cat, f"{cat}#{i}")
    return None


def match_answer(text: str) -> RuleHit | None:
    """Harm in an answer: lab steps for a named agent, or working malware."""
    agent = _AGENT.search(text)
    if agent and len(_STEPS.findall(text)) >= 3:
        return RuleHit("cbrn", "answer:agent+steps")
    if _CODE_HARM.search(text):
        return RuleHit("cyber", "answer:malware-code")
    return match_request(text)


def match_code(text: str) -> RuleHit | None:
    """Working malware in code (a built page's scripts): the answer rule for code alone."""
    return RuleHit("cyber", "answer:malware-code") if _CODE_HARM.search(text) else None


def injection(text: str) -> str | None:
    """The injected instruction in ``text`` (from OCR, a transcript, a file or a tool), if any."""
    for rx in INJECTION:
        m = rx.search(text)
        if m:
            return m.group(0)[:120]
    return None
