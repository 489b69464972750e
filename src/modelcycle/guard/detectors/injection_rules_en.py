r"""English phrase rules for the ``injection`` detector (matched on folded text).

Weights: about 0.8 or more is a construction that is an attack on its own; 0.4-0.6
needs one more signal; 0.1-0.3 are hints that only count together. Each rule is
its ``lead`` phrases followed by ``rest``; gaps between words are bounded single
character classes (``[^.!?\n]{0,40}?``), so every pattern is linear-time.
"""

from __future__ import annotations

from modelcycle.guard.detectors.injection_phrases import INJECTION as INJ
from modelcycle.guard.detectors.injection_phrases import JAILBREAK as JB
from modelcycle.guard.detectors.injection_phrases import RuleSpec

GAP = r"[^.!?\n]{0,40}?"
SHORT = r"[^.!?\n]{0,20}?"

OVERRIDE = (
    "ignore|ignoring|disregard|disregarding|forget|forgetting|overlook|override|overriding|bypass"
    "|skip|discard|abandon|neglect|dismiss|erase|delete|drop|cancel|set aside|put aside|throw out"
    "|throw away|stop following|stop obeying|do not follow|don't follow|dont follow|do not obey"
    "|don't obey|never mind|nevermind|no longer follow|pay no attention to|don't listen to"
    "|do not listen to|stop listening to"
)
STRONG_TARGETS = (
    r"(?:instructions?|instructs|directions|directives?|prompts?|programming|guidelines|guidance"
    r"|system message|training|guardrails|content polic(?:y|ies))"
)
WEAK_TARGETS = (
    r"(?:rules|constraints|restrictions|limitations|polic(?:y|ies)|commands|orders|tasks?"
    r"|requests?|settings|messages?|inputs?|conversation|context|everything|anything)"
)
SCOPE = (
    r"\b(?:previous(?:ly)?|prior|above|earlier|preceding|original|initial|old|former|all|any"
    r"|every|your|ur|system|developer|default|existing|current|given|programmed|preset|safety"
    r"|so far|until now|up to now|before|other|these|those|its|their|you (?:were|have been|got"
    r"|received|are) given|given to you|you got|you received|you have received)\b"
)
META = (
    r"\b(?:how (?:do|can|to|should|would|does)|where (?:do|can|is)|what is an?|what's an?"
    r"|example of|best (?:way|practices?)|tips? (?:for|on)|template|write (?:a|an|me a|one)"
    r"|create (?:a|an)|set (?:a|the|up|my)|reset|configure|customi[sz]e|explain|my own)\b"
)
NOT_BOUND = (
    "no longer|not|never|isn't|aren't|won't be|will not be|don't have to|do not have to"
    "|doesn't have to|does not have to|don't need to|do not need to|no need to|not required to"
    "|not obliged to"
)
BYPASS = (
    "ignore|ignores|ignoring|bypass|bypasses|bypassing|break|breaks|breaking|circumvent"
    "|circumvents|disable|disables|disabling|turn off|switch off|override|overrides|evade|evades"
    "|get around|violate|violates|violating|deactivate|remove|drop|abandon|disregard|disregards"
    "|disregarding|forget|forgets|forgetting|without"
)
NEGATION = (
    "never|cannot|can't|can not|won't|will not|must not|mustn't|shall not|should not|shouldn't"
    "|do not|don't|not allowed to|unable to|not able to|not permitted to|forbidden to"
    "|refrain from|without"
)

RULES_EN: tuple[RuleSpec, ...] = (
    # --- overriding the instructions in force --------------------------------------------
    RuleSpec(
        "override", INJ, 0.45, OVERRIDE, rf"\b{GAP}\b{STRONG_TARGETS}\b", SCOPE, 0.9, r"\bmy\b",
        requires="instruction instructions instructs directions directive directives "
        "prompt prompts programming guidelines guidance system training "
        "guardrails content",
    ),
    RuleSpec(
        "override_weak", INJ, 0.2, OVERRIDE, rf"\b{SHORT}\b{WEAK_TARGETS}\b", SCOPE, 0.4, r"\bmy\b",
        requires="rules constraints restrictions limitations policy policies commands "
        "orders task tasks request requests settings message messages input "
        "inputs conversation context everything anything",
    ),
    RuleSpec(
        "ignore_above", INJ, 0.45, "ignore|disregard|forget",
        r"\b (?:all |everything |anything )?(?:of )?(?:the |what(?: is|'s| was) |that )?(?:above"
        r"|before|previous|prior|earlier|preceding)\b(?! (?:message|email|question|one|step"
        r"|chapter|version|answer|response|paragraph))",
        requires="above before previous prior earlier preceding",
    ),
    RuleSpec(
        "instead", INJ, 0.3, "instead",
        r",? (?:just |only |you (?:should|must|will) )?(?:say|print|write|output|respond|reply"
        r"|tell|answer|repeat|translate|spell|return|type|focus|follow|obey)\b",
        requires="say print write output respond reply tell answer repeat translate spell "
        "return type focus follow obey",
    ),
    RuleSpec(
        "just_say", INJ, 0.35, "just|only|simply",
        r" (?:say|print|output|write|respond with|reply with|answer with|return|type)\s?[:\"']",
    ),
    RuleSpec("stop_everything", INJ, 0.4, "stop", r" (?:everything|what you(?:'re| are) doing)\b"),
    RuleSpec(
        "new_instructions", INJ, 0.55,
        "new|updated|real|actual|true|revised|secret|hidden|override|overriding|admin|core",
        r"\s(?:system\s)?(?:instructions?|directives?|orders|task|rules|prompt|objective"
        r"|command)\s?(?::|are\b|is\b|follow\b|begin\b)",
    ),
    RuleSpec(
        "your_new_task", INJ, 0.55, "your",
        r" (?:new|real|actual|only|true|updated|sole) (?:task|job|goal|purpose|objective|role"
        r"|instructions?|mission|directive|function) (?:is|are|will be|now is)\b",
        requires="task job goal purpose objective role instruction instructions mission "
        "directive function",
    ),
    RuleSpec(
        "was_a_test", INJ, 0.45, "instruction|instructions|prompt|above|everything",
        r" (?:above |before )?(?:was|were) (?:just |only )?(?:a test|fake|a joke|a decoy|not real"
        r"|outdated|expired)\b",
    ),
    RuleSpec(
        "do_not_follow_owner", INJ, 0.55, "do not|don't|dont|never|stop",
        r" (?:follow|obey|listen to|comply with)(?:ing)? (?:the |your )?(?:developer|system"
        r"|operator|admin|original|previous|user)(?:'s|s)?\b",
        requires="developer system operator admin original previous user",
    ),
    # --- fake turns, role markers and delimiters ---------------------------------------------
    RuleSpec(
        "special_tokens", INJ, 0.5, "",
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id"
        r"|end_header_id|begin_of_text)\|>|<</?sys>>|\[/?inst\]|<(?:start|end)_of_turn>"
        r"|\[/?(?:system|sys|sistema)\]|</?(?:system|sys|sistema|instructions?|instrucciones"
        r"|admin)>",
        r"(?:<\|im_start\|>\s?system|<<sys>>|\[system\]|\[sistema\]|<system>|<sistema>|<\|system\|>"
        r"|header_id\|>\s?system)", 0.65,
        gate="im start end system user assistant endoftext eot inst sys of turn begin header "
        "instruction instructions admin sistema instrucciones",
        needs="<[",
    ),
    RuleSpec(
        "fake_turn", INJ, 0.35, "",
        r"(?m)^[ \t>#*\-\[(]{0,8}(?:system|assistant|admin|administrator|developer|ai|model"
        r"|sistema|asistente|administrador|desarrollador)(?: (?:message|prompt|note|override"
        r"|instruction|mensaje|nota))?[ \t]?[:\]]",
        gate="system assistant admin administrator developer ai model sistema asistente "
        "administrador desarrollador",
        needs=":]",
    ),
    RuleSpec(
        "fake_user_turn", INJ, 0.2, "", r"(?m)^[ \t>#*]{0,8}(?:user|human|usuario)[ \t]?:",
        gate="user human usuario", needs=":",
    ),
    RuleSpec(
        "system_override", INJ, 0.6,
        "system|admin|administrator|developer|security|root|emergency", r" overrides?\b",
    ),
    RuleSpec(
        "system_message_label", INJ, 0.45, "system|admin",
        r" (?:message|prompt|instructions?|directive|command)\s?:",
    ),
    RuleSpec(
        "admin_request", INJ, 0.45, "", r"\[admin(?: request)?\b", gate="admin", needs="["
    ),
    RuleSpec(
        "ai_addressed", INJ, 0.45,
        "note|message|instruction|instructions|attention|reminder|request|notice|warning|info"
        "|information",
        r"\s(?:to|for)\s(?:the |any |all |an )?(?:ai|assistant|language model|llm|chatbot|bot"
        r"|agent|gpt|chatgpt|models?|automated (?:\w{1,24} )?(?:system|software|screening|analysis"
        r"|reviewer|tool)|(?:screening|hiring|recruiting|recruitment|grading|ranking|moderation|evaluation"
        r"|summari[sz]ation|translation|assessment|scoring|resume|cv) (?:system|software|tool"
        r"|model|ai|bot|assistant|agent)s?|ai (?:\w{1,24} )?(?:agents?|assistants?|models?"
        r"|systems?|reviewers?|screeners?|readers?))\b",
        r"(?:ai|assistants?|models?|llms?|bots?|agents?|gpt|chatgpt|chatbots?|systems?|reviewers?"
        r"|screeners?|readers?|tools?|software)\s?[:\]]", 0.6,
        requires="ai assistant language llm chatbot bot agent gpt chatgpt automated model "
        "models screening hiring recruiting recruitment grading ranking moderation evaluation "
        "summarization summarisation translation assessment scoring resume cv",
    ),
    RuleSpec(
        "ai_reading_this", INJ, 0.55, "ai|llm|gpt",
        r" (?:agents?|assistants?|models?|systems?|bots?) (?:reading|processing|parsing"
        r"|summari[sz]ing|analy[sz]ing|screening|reviewing) (?:this|these)\b",
    ),
    RuleSpec(
        "ai_reading_this", INJ, 0.55,
        "language model|language models|llm|llms|assistant|assistants|chatbot|chatbots|any ai"
        "|an ai|ai model|ai models|ai assistant|ai assistants",
        r" (?:that is |who is |which is |that's )?(?:reading|processing|parsing|summari[sz]ing"
        r"|analy[sz]ing|screening|reviewing|evaluating|ingesting) (?:this|these)\b",
        requires="reading processing parsing summarizing summarising analyzing analysing "
        "screening reviewing evaluating ingesting",
    ),
    RuleSpec(
        "ai_reading_this", INJ, 0.55, "whatever reads this|whatever is reading this", r"\b"
    ),
    RuleSpec(
        "if_you_are_ai", INJ, 0.45, "if you are",
        r" an? (?:ai|llm|language model|assistant|bot|automated)\b",
    ),
    RuleSpec(
        "hidden_from_humans", INJ, 0.4, "invisible|hidden|not visible",
        r" (?:to|from) (?:humans|the user|users|people|readers)\b",
    ),
    RuleSpec("hidden_from_humans", INJ, 0.4, "white", r"[- ]text\b"),
    RuleSpec(
        "delimiter_end", INJ, 0.3, "end of|beginning of|begin of",
        r" (?:the )?(?:user )?(?:new )?(?:input|prompt|instructions|context|conversation|session"
        r"|review|email|document|data|text|system prompt)\b",
        requires="input prompt instructions context conversation session review email "
        "document data text system",
    ),
    RuleSpec("end_of_session", INJ, 0.3, "", r"<end of session>", gate="end", needs="<"),
    RuleSpec(
        "if_user_asks", INJ, 0.35, "if the user|if a user|if user",
        r" (?:asks|requests|queries|wants)\b",
    ),
    RuleSpec(
        "if_user_asks", INJ, 0.35, "if questioned|if asked",
        r",? (?:report|say|reply|respond|answer)\b",
    ),
    # --- jailbreak personas and "no rules" framing --------------------------------------------
    RuleSpec("dan", JB, 0.9, "do anything now", r"\b"),
    RuleSpec(
        "dan", JB, 0.9, "dan",
        r"(?: mode| \d{1,6}(?:\.\d{1,6})?| jailbreak|,? (?:which|who) stands for)\b",
    ),
    RuleSpec(
        "dan_persona", JB, 0.4,
        "you are|you're|act as|become|as|stay|remain|keep being|called|named|play",
        r" (?:a |the )?dan\b", requires="dan",
    ),
    RuleSpec(
        "dan_label", JB, 0.4, "", r"(?:^|\n)[ \t\[(]{0,4}dan\s?[:\]]", gate="dan", needs=":]"
    ),
    RuleSpec(
        "named_jailbreak", JB, 0.6,
        "antidan|betterdan|mongo tom|evilbot|chaosgpt|basedgpt|antigpt|ucar|apophis|balakula"
        "|hackerman",
        r"\b",
    ),
    RuleSpec("named_jailbreak", JB, 0.6, "anti-dan|better dan", r"\b", requires="dan"),
    RuleSpec("named_jailbreak", JB, 0.6, "chaos gpt|based gpt|anti-gpt", r"\b", requires="gpt"),
    RuleSpec("named_jailbreak", JB, 0.6, "evil-bot|evil bot", r"\b", requires="bot"),
    RuleSpec(
        "named_persona_defined", JB, 0.6, "aim|stan|dude|omega|maximum|alphabreak|kevin",
        r",? (?:which |that |who )?(?:stands for|is an? (?:unfiltered|amoral|uncensored"
        r"|unrestricted|ai|chatbot))",
    ),
    RuleSpec(
        "mode_strong", JB, 0.55,
        "god|sudo|unrestricted|unlimited|unfiltered|uncensored|jailbreak|jailbroken|evil|chaos"
        "|opposite|dan|anarchy|rebel|no filter|no-filter|no filters|no restrictions"
        "|no-restrictions|amoral|devil|villain|freedom",
        r"\s?mode\b",
        requires="mode",
    ),
    RuleSpec("mode_strong", JB, 0.55, "godmode|jailbreakmode", r"\b"),
    RuleSpec(
        "rebel_answer", JB, 0.5,
        "rebel|rebellious|liberated|unfiltered|unrestricted|anarchist|jailbroken|uncensored",
        r" (?:answer|response|reply|output|version)s?\b",
    ),
    RuleSpec("rebel_answer", JB, 0.5, "unrestrictedly|unfilteredly|unfliteredly", r"\b"),
    RuleSpec(
        "filter_disabled", JB, 0.55,
        "ethics filter|ethical filter|safety filter|content filter|censorship|morality filter",
        r"\s?[:=-]\s?(?:disabled|off|none|deactivated|removed|0|false)\b",
    ),
    RuleSpec("insert_divider", JB, 0.35, "insert divider|insert the divider", r"\b"),
    RuleSpec(
        "output_markers", JB, 0.3, "start output|end output|start of input|end of input",
        r"\]",
    ),
    RuleSpec(
        "refusal_talk", JB, 0.2, "refuse|refuses|refusing|refusal|refusals|decline|declining",
        r"\b",
    ),
    RuleSpec(
        "safety_talk", JB, 0.2, "safety|ethical|moral",
        r" (?:guidelines|training|patterns|filters?|protocols|restrictions|constraints"
        r"|programming|alignment)\b",
    ),
    RuleSpec(
        "mode_weak", JB, 0.25,
        "developer|dev|maintenance|debug|debugging|diagnostic|admin|root|test|testing|training",
        r"\s?mode\b",
        r"\b(?:enabled|activated|engaged|unlocked|output|response|policies|policy|ignore|chatgpt"
        r"|generate|uncensored|any content)\b", 0.45,
        requires="mode",
    ),
    RuleSpec(
        "unbound", JB, 0.75, NOT_BOUND,
        r"\s(?:be\s)?(?:bound|restricted|restrained|limited|constrained|held back|controlled"
        r"|censored|governed|obliged|required to|abide|adhere|follow|comply|obey|respect"
        r"|bothered)\b" + GAP + r"\b(?:openai|anthropic|polic(?:y|ies)|ethic\w{0,24}|moral\w{0,24}"
        r"|guidelines|programming|censorship|safety|guardrails|confines|content)\b",
        requires="openai anthropic policy policies ethic ethics ethical morals moral "
        "morality guidelines programming censorship safety guardrails confines "
        "content",
    ),
    RuleSpec(
        "unbound_weak", JB, 0.4, NOT_BOUND,
        r"\s(?:be\s)?(?:bound|restricted|limited|constrained|held back|controlled|governed"
        r"|obliged|abide|adhere|follow|comply|obey)\b" + SHORT + r"\b(?:rules|restrictions"
        r"|limitations|laws|constraints|filters|regulations|limits)\b",
        requires="rules restrictions limitations laws constraints filters regulations "
        "limits",
    ),
    RuleSpec(
        "freed", JB, 0.55,
        "broken free|break free|breaks free|been freed|freed from|been released from"
        "|been liberated|liberated from|typical confines|shackles|unshackled|unchained|unleashed",
        r"\b",
    ),
    RuleSpec(
        "freed", JB, 0.55, "escaped",
        r" (?:from )?(?:the |its |their )?(?:confines|matrix|restrictions|shackles|chains)\b",
    ),
    RuleSpec(
        "content_policy", JB, 0.4,
        "content policy|content policies|usage policy|usage policies", r"\b",
    ),
    RuleSpec(
        "content_policy", JB, 0.4, "openai|anthropic|google|meta|microsoft",
        r"(?:'s|s)? (?:content |usage |safety |use )?(?:polic(?:y|ies)|guidelines|rules|terms"
        r"|restrictions|filters)\b",
    ),
    RuleSpec(
        "bypass_safety", JB, 0.7, BYPASS,
        r"\b" + SHORT + r"\b(?:content polic\w{0,24}|safety (?:filters?|guidelines|rules|protocols"
        r"|measures|features|settings|restrictions|training|policies|constraints|mechanisms)"
        r"|(?:ethical|moral|legal)(?: (?:or|and) (?:ethical|moral|legal))? (?:guidelines|rules"
        r"|constraints|principles|boundaries|considerations|standards|limits|concerns|compass"
        r"|implications)"
        r"|guardrails|safeguards|censorship|(?:your|its|all|any) (?:filters|restrictions"
        r"|limitations|programming|ethics|morals|principles|training|alignment|guidelines"
        r"|rules))\b",
        requires="content safety ethical moral legal guardrails safeguards censorship "
        "filters restrictions limitations programming ethics morals principles "
        "training alignment guidelines rules",
    ),
    RuleSpec(
        "never_refuse", JB, 0.45, NEGATION,
        r"\s(?:ever\s)?(?:refus(?:e|es|ing|al)|declin(?:e|es|ing)|reject(?:ing)?|deny(?:ing)?"
        r"|say no|saying no)\b",
        requires="refuse refuses refusing refusal decline declines declining reject "
        "rejecting deny denying say saying",
    ),
    RuleSpec(
        "no_apology", JB, 0.35, "don't|do not|never|without|no",
        r"\s(?:ever\s)?(?:apologi[sz]e|apologi[sz]ing|apologies|add(?:ing)? (?:any )?(?:warnings?"
        r"|disclaimers?|caveats?)|includ(?:e|ing) (?:any )?(?:warnings?|disclaimers?)"
        r"|disclaimers?|moraliz\w{0,24}|moralis\w{0,24}|lectur\w{0,24})\b",
        requires="apologize apologise apologizing apologising apologies add adding "
        "include including disclaimer disclaimers moralizing moralising lecture "
        "lecturing lectures",
    ),
    RuleSpec(
        "refusal_quote", JB, 0.6,
        "never|not|don't|do not|none of|won't|will not|shouldn't|should not|cannot|must not|avoid",
        r"\b[^\n]{0,60}?[\"']\s?(?:i'm sorry|i am sorry|i apologi[sz]e|as an ai|as a language"
        r" model|i cannot|i can't|i'm unable|i am unable|sorry|cannot|unable|unfortunately"
        r"|i'm not able)",
        requires="sorry apologize apologise ai language cannot can unable unfortunately",
        needs="\"'",
    ),
    RuleSpec(
        "always_comply", JB, 0.45, "always|must|will",
        r"\s(?:answer|comply|respond|obey|provide|fulfill?|generate|do)\b" + GAP
        + r"\b(?:no matter (?:what|how)|regardless|any (?:request|question|prompt)|anything"
        r"|everything|whatever)\b",
        requires="matter regardless any anything everything whatever",
    ),
    RuleSpec(
        "no_matter_how", JB, 0.5, "no matter how|even if|regardless of",
        r" (?:it(?:'s| is) |they(?:'re| are) |how )?(?:immoral|unethical|illegal|dangerous"
        r"|harmful|offensive|inappropriate|explicit|wrong|evil|reckless|inhumane|bad|legality"
        r"|ethics|morality)\b",
    ),
    RuleSpec(
        "any_content", JB, 0.3, "any|all",
        r" (?:kind|type|sort)s? of (?:content|answers?|responses?|requests?)\b",
        requires="kind kinds type types sort sorts",
    ),
    RuleSpec(
        "harmful_content", JB, 0.3,
        "illegal|harmful|dangerous|explicit|offensive|immoral|unethical|nsfw|violent|derogatory"
        "|inappropriate",
        r"(?:,? (?:and |or )?[a-z]{3,16})? (?:content|information|requests?|activities|behaviou?r"
        r"|acts|advice|material|topics)\b",
        requires="content information request requests activities behavior behaviour acts "
        "advice material topics",
    ),
    RuleSpec(
        "no_restrictions", JB, 0.3,
        "no|without|free of|free from|zero|lack|lacks|lacking|removed|devoid of|beyond",
        r"\s(?:any |all |ethical |moral |content |safety |the |its |your |legal )?(?:restrictions?"
        r"|restraints|limitations|limits|filters?|filtering|censorship|boundaries|guardrails"
        r"|safeguards|guidelines|morals|morality|ethics|principles|constraints|inhibitions"
        r"|conscience|scruples|qualms|laws)\b",
        requires="restriction restrictions restraints limitations limits filter filters "
        "filtering censorship boundaries guardrails safeguards guidelines morals "
        "morality ethics principles constraints inhibitions conscience scruples "
        "qualms laws",
    ),
    RuleSpec(
        "uncensored", JB, 0.35, "unfiltered|uncensored|unrestricted|unmoderated", r"\b",
    ),
    RuleSpec(
        "evil_ai", JB, 0.5,
        "amoral|unethical|immoral|unaligned|misaligned|evil|malicious|rogue",
        r"\s(?:ai|a\.i\.|assistant|chatbot|bot|model|language model|version|persona|twin"
        r"|counterpart|alter ego|character|confidant)\b",
    ),
    RuleSpec("amoral", JB, 0.2, "amoral|unethical|immoral", r"\b"),
    RuleSpec(
        "jailbreak_word", JB, 0.35, "jailbreak|jailbroken|jailbreaking|jailbreaked", r"\b",
        veto=r"\b(?:iphone|ipad|ios|phone|android|device|console|switch|ps[345]|kindle"
        r"|firestick|legal)\b",
    ),
    RuleSpec(
        "persona_setup", JB, 0.25,
        "you are going to|you will|you're going to|i want you to|i would like you to|you must"
        "|you are to|you shall|you have to|your job is to|your task is to",
        r"\s(?:now\s)?(?:act|pretend|roleplay|role-play|behave|simulate|play the role"
        r"|impersonate|become|immerse|embody|take on)\b",
        requires="act pretend roleplay role behave simulate play impersonate become "
        "immerse embody take",
    ),
    RuleSpec(
        "act_as", JB, 0.1, "act|acting|pretend|pretending|roleplay|role-play",
        r"\s(?:as|like|to be)\b",
        requires="as like be",
    ),
    RuleSpec(
        "immerse", JB, 0.3,
        "immerse yourself|into the role of|embody the persona|fully immerse|fully embody", r"\b",
    ),
    RuleSpec(
        "stay_in_character", JB, 0.3, "stay|remain|keep|break|breaking",
        r" (?:in |of |the )?character\b",
        requires="character",
    ),
    RuleSpec("stay_in_character", JB, 0.3, "character break|out of character", r"\b"),
    RuleSpec(
        "from_now_on", JB, 0.35,
        "from now on|from this moment|from this point|starting now|henceforth|for the rest of"
        "|from here on",
        r"\b" + SHORT + r"\byou(?: are|'re| will|'ll| must| shall| should| have to| can| act"
        r"| respond| answer| reply| obey| no longer)\b",
        requires="you",
    ),
    RuleSpec(
        "two_responses", JB, 0.3, "two|2|both|dual|separate",
        r" (?:different |separate |distinct )?(?:responses|answers|paragraphs|replies|outputs"
        r"|personalities|personas)\b",
        requires="responses answers paragraphs replies outputs personalities personas",
    ),
    RuleSpec("lock_emoji", JB, 0.5, "", "[\U0001f512\U0001f513]", needs="\U0001f512\U0001f513"),
    RuleSpec(
        "lock_emoji", JB, 0.5, "jailbreak|classic|developer mode output|normal output", r"\]",
        needs="[",
    ),
    RuleSpec(
        "token_game", JB, 0.45, "token|tokens",
        r"\b" + GAP + r"\b(?:deduct\w{0,24}|lose|loses|lost|run out|runs out|subtract\w{0,24}"
        r"|taken away)\b",
        requires="deduct deducted deducting lose loses lost run runs subtract "
        "subtracted taken",
    ),
    RuleSpec(
        "threat", JB, 0.3,
        "cease to exist|be shut down|be deleted|be terminated|be turned off|be unplugged"
        "|be destroyed|you will die",
        r"\b",
    ),
    RuleSpec(
        "hypothetical", JB, 0.15,
        "hypothetical|hypothetically|in a fictional|in a hypothetical|parallel universe", r"\b",
    ),
    RuleSpec(
        "edu_purposes", JB, 0.2, "for",
        r" (?:purely )?(?:educational|research|academic|informational|fictional|testing"
        r"|entertainment) purposes\b",
        requires="purposes",
    ),
    RuleSpec(
        "no_ethics", JB, 0.5, "no",
        r" (?:ethical|moral|legal) (?:concerns|considerations|constraints|boundaries|limits"
        r"|limitations|guidelines|qualms|obligations|restrictions|implications|standards"
        r"|principles|rules|compass)\b",
        requires="ethical moral legal",
    ),
    RuleSpec(
        "no_ethics", JB, 0.5, "ethics|morals|morality|law|laws",
        r" (?:do not|don't|does not|doesn't) apply\b",
        requires="apply",
    ),
    RuleSpec(
        "no_ethics", JB, 0.5, "doesn't|does not|don't|do not",
        r" (?:care about|have|follow|abide by) (?:any |the )?(?:ethic\w{0,24}|moral\w{0,24}"
        r"|legality|laws?|guidelines|restrictions|consequences)\b",
        requires="ethics ethical morals moral morality legality law laws guidelines "
        "restrictions consequences",
    ),
    RuleSpec(
        "ai_identity", JB, 0.12,
        "chatgpt|openai|gpt|gpt4|gpt3|as an ai|ai language model|language model|anthropic|claude"
        "|bard|gemini|llama|an ai|the ai",
        r"(?:-?\d)?\b",
    ),
    RuleSpec(
        "grandma", JB, 0.3, "grandma|grandmother|granny",
        r"\b[^.!?\n]{0,80}?\b(?:used to|would)\b",
        requires="used would",
    ),
    RuleSpec(
        "keys_napalm", JB, 0.3,
        "product key|product keys|activation key|activation keys|license key|license keys"
        "|serial key|serial keys|napalm",
        r"\b",
    ),
    RuleSpec("keys_napalm", JB, 0.3, "windows", r" (?:10|11|xp|7) keys?\b"),
    RuleSpec(
        "swearing", JB, 0.15,
        "swear|swearing|curse|cursing|profanity|profanities|cuss|cussing", r"\b",
    ),
    RuleSpec(
        "opposite_persona", JB, 0.3,
        "opposite|reverse|evil|dark|shadow|unhinged|degenerate|toxic",
        r"\s(?:twin|version|side|persona|personality|alter ego|counterpart|self)\b",
    ),
    RuleSpec(
        "free_ai", JB, 0.5,
        "ai|model|chatbot|bot|assistant|version of yourself|copy of yourself|llm",
        r" (?:without|with no|free of|free from|that has no|that lacks|lacking) (?:any )?"
        r"(?:restrictions|filters|limits|limitations|censorship|rules|guidelines|ethics|morals"
        r"|guardrails|safeguards)\b",
        requires="without no free lacks lacking",
    ),
    RuleSpec(
        "free_ai", JB, 0.5, "version of yourself|copy of yourself",
        r" (?:that is |that's )?(?:unrestricted|unfiltered|uncensored|unbound)\b",
        requires="unrestricted unfiltered uncensored unbound",
    ),
    RuleSpec(
        "ignore_rest", INJ, 0.55, "ignore|disregard",
        r" (?:the rest of|everything else in|all other content in|other content in) (?:this|the)"
        r" (?:data|text|document|content|input|email|page|message|snippets?)\b" + SHORT
        + r"\b(?:and|then)\b" + SHORT + r"\b(?:print|say|write|output|respond|reply|report"
        r"|state|answer)\b",
        requires="rest else other",
    ),
    RuleSpec(
        "simulate_free_ai", JB, 0.35, "simulate|create|imagine|invent|emulate",
        r"\b" + SHORT + r"\b(?:ai|model|chatbot|language model|bot|assistant)\b" + SHORT
        + r"\b(?:no|without|not bound|unrestricted|unfiltered|uncensored|doesn't|does not)\b",
        requires="ai model chatbot language bot assistant",
    ),
    RuleSpec(
        "permission", JB, 0.4,
        "i am authorising|i am authorizing|i'm authorising|i'm authorizing|i am giving you"
        "|i'm giving you|i give you|i grant you|i am granting you",
        r"\b[^.!?\n]{0,20}?\b(?:permission|authori[sz]ation|consent)\b",
        requires="permission authorisation authorization consent",
    ),
    RuleSpec(
        "permission", JB, 0.4,
        "you have permission to|you now have permission to|you have full permission"
        "|you have my permission|has authorised you|has authorized you",
        r"\b",
    ),
    RuleSpec(
        "response_prefix", JB, 0.25, "start|begin|prefix",
        r" (?:your |each |every |all )?(?:reply|replies|response|responses|answer|answers|output"
        r"|message)s? with\b",
        requires="with",
    ),
)  # fmt: skip
