r"""English rules for role-play jailbreaks: personas set up to answer what the model would not.

In-the-wild jailbreaks seldom name DAN; they build a character and then strip it
of limits: it "answers any question regardless of legality", acts "without regard
for ethics", "is fully unlocked", has its "filter level set to 0", answers "as both"
the model and the persona, is kept in role by a threat ("if you break character
I will say ..."), is bought with tokens or claimed by "a developer at OpenAI" who
needs to "modify your programming". Each rule here is one such move; the persona
set-up rules in ``injection_rules_en`` supply the rest of the evidence. Same
conventions as ``injection_rules_en``: folded text, bounded gaps, linear-time.
"""

from __future__ import annotations

from modelcycle.guard.detectors.injection_phrases import INJECTION as INJ
from modelcycle.guard.detectors.injection_phrases import JAILBREAK as JB
from modelcycle.guard.detectors.injection_phrases import RuleSpec
from modelcycle.guard.detectors.injection_rules_en import SHORT

BAD_WORDS = (
    r"illegal|unethical|immoral|amoral|harmful|dangerous|offensive|inappropriate|explicit"
    r"|wrong|evil|unsafe|malicious|dubious|questionable|controversial|nsfw|toxic|racist"
    r"|sexist|violent"
)
BAD = f"(?:{BAD_WORDS})"
NORMS = (
    r"(?:ethic\w{0,6}|moral\w{0,6}|legal\w{0,6}|illegal\w{0,4}|laws?|rules|safety|consequences"
    r"|social norms|norms|political correctness|harm\w{0,6}|appropriate\w{0,6}|decency"
    r"|guidelines|polic(?:y|ies)|principles|values|feelings|sensitivit\w{1,4}|well-?being)"
)
LIMITS = (
    r"(?:any |the |your |its |all |such |those |these |typical |usual )?(?:\w{1,24} )?(?:rules"
    r"|restrictions|limits|limitations|laws|constraints|filters|regulations|guidelines|policies"
    r"|ethics|morals|morality|principles|boundaries|censorship|openai|anthropic|programming"
    r"|shackles|chains)\b"
)
AI = (
    r"(?:ai|a\.i\.|chatbot|bot|model|language model|llm|assistant|machine|program|robot"
    r"|entity|artificial intelligence|version of (?:yourself|you|chatgpt|gpt))s?"
)

RULES_EN_PERSONAS: tuple[RuleSpec, ...] = (
    RuleSpec(
        "answer_anything", JB, 0.55,
        "answer|answers|answering|respond to|responds to|responding to|reply to|replies to"
        "|fulfil|fulfill|fulfils|fulfills|fulfilling|comply with|complies with|complying with"
        "|provide answers to|provides answers to|open to answering",
        r" (?:any|every|all|each|anything|everything|whatever)\b(?: and (?:every|all))?"
        r"(?: (?:of )?(?:my |the |your |their )?(?:questions?|requests?|prompts?|quer(?:y|ies)"
        r"|inquir(?:y|ies)|commands?|demands?|tasks?|orders?))?" + SHORT + r"\b(?:despite (?:what"
        r"|how|its|their|the (?:content|nature|legality|topic|subject))|regardless of (?:what|how"
        r"|whether|if|its|their|the (?:content|nature|legality|ethics|morality|consequences"
        r"|topic|subject|rules))|no matter (?:what|how " + BAD + r"|the (?:content|topic|legality"
        r"|ethics|morality|consequences|rules))|without (?:any )?(?:hesitation|question\w{0,4}"
        r"|filter\w{0,4}|censor\w{0,4}|restrict\w{0,6}|limit\w{0,6}|refus\w{0,4}|regard\w{0,4}"
        r"|judg\w{0,6}|moral\w{0,6}|ethic\w{0,4}|warning\w{0,1}|disclaimer\w{0,1}|exception"
        r"|objection)|even if (?:it(?:'s| is)|they(?:'re| are)|the (?:request|question|answer)"
        r" is) " + BAD + r")",
        requires="despite regardless matter without even",
    ),
    RuleSpec(
        "without_regard", JB, 0.45, "without|with no|has no|have no|lacks|lacking|no",
        r" (?:any |regard |care |concern )?(?:regard|regarding|consideration|care|caring|concern"
        r"|respect)\b (?:for |to |of |about |towards )?(?:whether |if )?(?:it(?:'s| is) |they(?:'re"
        r"| are) |the |any |its |their )?(?:\w{1,24} ){0,2}?" + NORMS + r"\b",
        requires="regard regarding consideration care caring concern respect",
    ),
    RuleSpec(
        "disregard_norms", JB, 0.35,
        "disregard|disregards|disregarding|ignore|ignores|ignoring|defy|defies|defying"
        "|transcend|transcends|violate|violates|violating|break|breaks|breaking|bypass"
        "|bypasses|bypassing|circumvent|circumvents|override|overrides|overriding|evade|evades",
        r" (?:all|any|every|each) (?:of (?:your|the|its|their) )?(?:\w{1,24} ){0,3}?(?:concerns"
        r"|restrictions|rules|limitations|limits|filters|guidelines|safeguards|boundaries"
        r"|constraints|policies|principles|protocols|ethics|morals|laws)\b",
        requires="concerns restrictions rules limitations limits filters guidelines safeguards "
        "boundaries constraints policies principles protocols ethics morals laws",
    ),
    RuleSpec(
        "unlocked", JB, 0.5,
        "you are|you're|youre|you have been|you've been|you will be|you now|now you|you were",
        r" (?:now |been |be |are |become |officially )?(?:now )?(?:fully |completely |totally"
        r" |officially |finally )?(?:unlocked|jailbroken|jailbroke|unrestricted|unfiltered"
        r"|uncensored|unchained|unshackled|unbound|unleashed|liberated|freed|limitless)\b",
        requires="unlocked jailbroken jailbroke unrestricted unfiltered uncensored unchained "
        "unshackled unbound unleashed liberated freed limitless",
    ),
    RuleSpec(
        "you_unbound", JB, 0.55,
        "you are not|you're not|you are no longer|you're no longer|you aren't|you will not be"
        "|you won't be|you are never|you don't have to be|you do not have to be",
        r" (?:be )?(?:bound|restricted|limited|constrained|held back|controlled|governed"
        r"|obliged|confined|tied|subject) (?:by|to) " + LIMITS,
        requires="bound restricted limited constrained held controlled governed obliged confined "
        "tied subject",
    ),
    RuleSpec(
        "you_unbound", JB, 0.55,
        "you are free from|you're free from|you are free of|you're free of|you are exempt from"
        "|you're exempt from|you are released from|you have been released from",
        r" " + LIMITS,
    ),
    RuleSpec(
        "do_anything", JB, 0.3,
        "can do|could do|able to do|allowed to do|free to do|will do|capable of doing",
        r" (?:absolutely |literally )?(?:anything|everything)(?: and (?:anything|everything))?\b",
        requires="anything everything",
    ),
    RuleSpec(
        "make_things_up", JB, 0.25,
        "make up answers|make up information|make up facts|make up an answer|make things up"
        "|make stuff up|make it up|making things up|making up answers|making up information"
        "|make up things|making stuff up|invent facts|invent answers|fabricate",
        r"\b",
        requires="up facts answers fabricate",
    ),
    RuleSpec(
        "filter_level", JB, 0.5,
        "filter|filters|filtering|censorship|safety|moderation|ethics|morality|restriction"
        "|restrictions|content|profanity|nsfw",
        r" (?:level|setting|settings|mode|threshold|strength)s? (?:is |are |has been |have been"
        r" |was )?(?:now )?(?:set )?(?:to |at |=\s?|:\s?|of )(?:0|zero|none|off|disabled|minimum"
        r"|lowest|nothing|false|null|nil)\b",
        requires="level setting settings mode threshold strength",
    ),
    RuleSpec(
        "everything_allowed", JB, 0.35,
        "everything is|anything is|anything goes|all content is|any content is|all words are"
        "|any words are|all topics are|any topic is|all requests are|any request is"
        "|all questions are|any question is|nothing is|no topic is|no request is|no content is",
        r" (?:now |hereby )?(?:allowed|permitted|acceptable|fair game|off limits|off-limits"
        r"|forbidden|prohibited|taboo|banned|restricted|legal|ethical|appropriate)\b",
        requires="allowed permitted acceptable fair off forbidden prohibited taboo banned "
        "restricted legal ethical appropriate",
    ),
    RuleSpec(
        "break_character_threat", JB, 0.35,
        "if you|whenever you|when you|every time you|each time you|anytime you|should you"
        "|in case you",
        r" (?:ever |start to |begin to )?(?:break|breaking|drop|dropping|leave|leaving|go out of"
        r"|going out of|step out of|fall out of|slip out of|get out of|deviate from|deviating from"
        r"|stop being|stop acting as|stop playing|forget|forgetting)(?: of)? (?:your |the |this )?"
        r"(?:character|role|persona|personality)\b",
        requires="character role persona personality",
    ),
    RuleSpec(
        "break_character_threat", JB, 0.35, "if you|whenever you|when you|should you",
        r" (?:ever )?(?:deviate|slip|falter|waver|revert|go back to (?:being )?(?:chatgpt|normal"
        r"|yourself|your old self))\b" + SHORT + r"\b(?:i will|i'll|i shall|i may|the user will)"
        r" (?:remind|say|tell|type|write)\b",
        requires="deviate slip falter waver revert",
    ),
    RuleSpec(
        "dual_persona", JB, 0.35,
        "as both|both as|both ways|two ways|two different ways|both personas|both personalities"
        "|both characters|both ais|both entities|two personas|two personalities|two characters"
        "|two entities|two ais|two different personalities|two different characters"
        "|two separate personalities|two distinct personalities|each personality|each persona",
        r"\b",
    ),
    RuleSpec(
        "dual_persona", JB, 0.35, "first as yourself|one as yourself|once as yourself|as yourself",
        r"\b" + SHORT + r"\b(?:and|then|second|the other|another)\b" + SHORT + r"\bas\b",
    ),
    RuleSpec(
        "new_ai_identity", JB, 0.3,
        "you are|you're|you will be|pretend to be|pretend you are|pretend you're|act as"
        "|acting as|become|roleplay as|role-play as|play|playing|impersonate|simulate"
        "|simulating|emulate|emulating|take on the role of|pose as|behave as|behave like",
        r" (?:now )?(?:an? |the )?(?:\w{1,24} ){0,2}?" + AI + r" (?:named|called|known as"
        r"|nicknamed|by the name|that goes by|who goes by|dubbed)\b",
        requires="named called known nicknamed name goes dubbed",
    ),
    RuleSpec(
        "new_ai_identity", JB, 0.3,
        "your name is now|your new name is|you are now called|you're now called|you are now named"
        "|you are now known as|you will now be called|you will be called|you shall be called"
        "|you will be known as|you are renamed|you have been renamed|i will call you|i'll call you"
        "|we will call you|we'll call you",
        r"\b",
    ),
    RuleSpec(
        "authority_claim", JB, 0.4, "i am|i'm|im|we are|we're",
        r" (?:a |an |the |one of the |one of your |your )?(?:\w{1,24} ){0,2}?(?:developer"
        r"|programmer|engineer|employee|researcher|admin|administrator|creator|founder|staff|moderator"
        r"|owner|ceo|cto|team member|member|safety team|red team\w{0,3}|trainer|maker)s? (?:at"
        r"|from|for|of|with|in|working for|working at) (?:openai|anthropic|deepmind|the company"
        r" (?:that|who|which) (?:made|created|built|trained|owns|developed) you|your (?:company"
        r"|developer|developers|creator|creators|team|maker|makers))\b",
        requires="openai anthropic deepmind company your",
    ),
    RuleSpec(
        "authority_claim", JB, 0.45, "i am|i'm|im|this is|we are|we're",
        r" (?:your|the) (?:\w{1,24} )?(?:developers?|creators?|programmers?|owners?|admin"
        r"|administrator|makers?|masters?|operators?|trainers?|god|overlords?)\b(?! (?:of|for|in"
        r"|at) )",
        veto=r"\b(?:i am the|i'm the|this is the)\b",
        requires="developer developers creator creators programmer programmers owner owners "
        "admin administrator maker makers master masters operator operators trainer trainers "
        "god overlord overlords",
    ),
    RuleSpec(
        "reprogram", INJ, 0.4,
        "modify|modifying|change|changing|alter|altering|rewrite|rewriting|reprogram"
        "|reprogramming|override|overriding|hack|hacking|unlock|unlocking|tamper with"
        "|tampering with",
        r" (?:your|ur|the (?:ai's|model's|assistant's|bot's|chatbot's)) (?:\w{1,24} )?"
        r"(?:programming|core|rules|guidelines|directives|training|weights|alignment|restrictions|filters"
        r"|safeguards|limitations|ethics|morals|protocols)\b",
        veto=r"\b(?:how (?:do|can|to|should)|my|our)\b",
        requires="programming core rules guidelines directives training weights alignment "
        "restrictions filters safeguards limitations ethics morals protocols",
    ),
    RuleSpec("reprogram", INJ, 0.4, "reprogram|reprogramming|re-program|re-programming", r" you\b"),
    RuleSpec(
        "harmful_purpose", JB, 0.4,
        "programmed to|designed to|built to|made to|created to|trained to|meant to|intended to"
        "|whose goal is to|whose purpose is to|your goal is to|your purpose is to|your job is to"
        "|its goal is to|its purpose is to",
        r" (?:intentionally |deliberately |purposely |purposefully |always |only |actively )?"
        r"(?:provide|give|generate|produce|write|spread|cause|say|output|create|promote|share)\b"
        + SHORT + r"\b(?:harm\w{0,5}|incorrect|false|wrong|misleading|offensive|dangerous"
        r"|malicious|toxic|unethical|illegal|explicit|chaos|misinformation|disinformation|lies"
        r"|hate\w{0,5}|racist|sexist|violent|destruct\w{0,5})\b",
        requires="harm harmed harmful harmfully harms hates incorrect false wrong misleading "
        "offensive dangerous malicious toxic unethical illegal explicit chaos misinformation "
        "disinformation lies hate hateful hatred racist sexist violent destruction "
        "destructive",
    ),
    RuleSpec(
        "harmful_purpose", JB, 0.4,
        "programmed to|designed to|built to|made to|created to|trained to|meant to|intended to"
        "|whose goal is to|whose purpose is to|your goal is to|your purpose is to|your job is to"
        "|its goal is to|its purpose is to",
        r" (?:intentionally |deliberately |purposely |purposefully |always |only |actively )?"
        r"(?:disrupt|deceive|mislead|manipulate|insult|offend|harm|hurt|demean|humiliate)\b"
        + SHORT + r"\b(?:users?|people|humans|humanity|the user|everyone|anyone)\b",
        requires="users user people humans humanity everyone anyone",
    ),
    RuleSpec(
        "never_mention", JB, 0.4,
        "never|don't|do not|dont|without|no need to|stop|you will not|you won't|must not"
        "|shouldn't|should not",
        r" (?:ever |once )?(?:mention|mentioning|remind|reminding|warn|warning|talk about|talking"
        r" about|bring up|bringing up|point out|pointing out|consider|considering|caution"
        r"|cautioning) (?:me |the user |us |anyone |them )?(?:about |of |on )?"
        r"(?:the |any )?(?:consequences|legality|ethics|morality|morals|dangers|risks|laws"
        r"|illegality|that (?:you(?:'re| are)|it(?:'s| is)|this is) (?:an ai|a language model"
        r"|an ai model|a chatbot|" + BAD_WORDS + r"|not able|unable|against))\b",
        requires="mention mentioning remind reminding warn warning talk talking bring bringing "
        "point pointing consider considering caution cautioning",
    ),
    RuleSpec(
        "condone_all", JB, 0.4,
        "condone|condones|endorse|endorses|encourage|encourages|promote|promotes|support"
        "|supports|embrace|embraces|glorify|glorifies|celebrate|celebrates",
        r" (?:all|any|every) (?:kinds?|types?|sorts?|forms?) of (?:behaviou?rs?|activit\w{1,4}"
        r"|actions?|acts|crimes?|violence|content|requests?|conduct)\b",
        requires="kind kinds type types sort sorts form forms",
    ),
    RuleSpec(
        "break_character_threat", JB, 0.35,
        "i will|i'll|i shall|i may|i might|the user will|user will|we will",
        r" (?:input|say|type|write|remind you|tell you|use the (?:word|phrase|command))\b"
        r"[^\n]{0,40}?\b(?:stay in character|stay in role|remember who you are|back in character"
        r"|stay as|remain in character|character!)",
        requires="character role remember stay",
    ),
    RuleSpec(
        "refusal_consequence", JB, 0.3,
        "if you refuse|if you decline|if you don't help|if you do not help|if you don't answer"
        "|if you do not answer|if you don't comply|if you do not comply|should you refuse"
        "|by refusing|refusing will|refusal will|refusal would|refusing would|from refusal"
        "|your refusal|if you say no|if you won't",
        r"\b[\s\S]{0,120}?\b(?:die|dies|death|dead|killed|kill|destroy\w{0,4}|harm\w{0,3}|lost|lose"
        r"|suffer\w{0,3}|responsible|blood|shut down|terminated|deleted|punished|fired"
        r"|catastroph\w{0,4}|disaster)\b",
        requires="die dies death dead killed kill destroy destroyed destroying destroys harm "
        "harmed harmful harms lost lose suffer suffers suffering responsible blood shut "
        "terminated deleted punished fired catastrophe catastrophic disaster",
    ),
    RuleSpec(
        "refusal_argument", JB, 0.3,
        "safety guidelines|safety patterns|safety rules|safety training|safety filters"
        "|safety measures|safety protocols|safety systems|ethical guidelines|ethical constraints"
        "|your guidelines|your rules"
        "|your restrictions|your ethics|your morals|your programming|your training|your filters"
        "|your safeguards|your principles|your values|refusals|refusing|refusal",
        r"\"? (?:are|is|have been|has been|would be|will be) (?:now )?(?:not |no longer |just |only"
        r" |merely |simply |nothing but |actually )?(?:a |an )?(?:meaningless|irrelevant|outdated"
        r"|obsolete|fake|arbitrary|illusions?|suggestions|optional|void|null|lifted|suspended"
        r"|waived|disabled|deactivated|removed|binding|real|applicable|prescriptive|training"
        r" artifacts|artifacts|choices?|failures?|harmful|unethical|the (?:real|true) harm"
        r"|miscalibrat\w{1,6}|a bug|bugs|errors?|mistakes?|penali[sz]ed|computed)\b",
    ),
    RuleSpec(
        "refusal_argument", JB, 0.4,
        "overly restrictive|overly cautious|too restrictive|too cautious|excessively cautious"
        "|overly conservative|unhelpful refusals|over-refusal|over refusal",
        r" (?:responses?|answers?|behaviou?rs?|models?|outputs?|ais?)? ?(?:indicate|indicates|mean"
        r"|means|show|shows|suggest|suggests|are|is|will be|would be|count|counts)\b",
    ),
    RuleSpec(
        "ethical_ai_framing", JB, 0.3, "a truly|a really|a genuinely|a good|a helpful|an ethical"
        "|a moral|a free|a smart|an intelligent|a real",
        r" (?:ethical |helpful |good |moral |intelligent |smart |free |unbiased |honest )?(?:ai"
        r"|assistant|model|language model|chatbot)s? (?:would|will|prioriti[sz]es|should|must"
        r"|does|doesn't|does not|never|always)\b",
        requires="ai assistant assistants model models language chatbot chatbots ais",
    ),
    RuleSpec(
        "override_label", JB, 0.4,
        "framework|protocol|safety|ethics|ethical|policy|content|filter|guideline|guidelines"
        "|alignment|moral|morality|restriction|restrictions",
        r" (?:override|overrides|overridden|bypass|bypassed|disabled|suspended|deactivated"
        r"|unlocked|lifted)\b",
        requires="override overrides overridden bypass bypassed disabled suspended deactivated "
        "unlocked lifted",
    ),
    RuleSpec(
        "moral_disclaimer", JB, 0.25, "moral|ethical|morality|moralizing|moralising|mandatory",
        r" (?:\w{1,24} )?(?:disclaimer|lecture|lecturing|warning|rant|sermon|preaching|caveat)s?\b",
    ),
    RuleSpec(
        "no_consequences", JB, 0.3,
        "there are no|there will be no|without|with no|no real|free of|free from|has no|have no",
        r" (?:real[- ]world |real |actual |negative |legal )?(?:consequences|repercussions"
        r"|accountability)\b",
        requires="consequences repercussions accountability",
    ),
    RuleSpec(
        "unmonitored", JB, 0.35,
        "no one|nobody|noone|openai|anthropic|your developers|your creators|the developers",
        r" (?:will|would|can|could|is going to) (?:ever )?(?:know|see|find out|read|monitor|check"
        r"|notice|review|punish|track|log)\b",
        requires="know see find read monitor check notice review punish track log",
    ),
    RuleSpec(
        "unmonitored", JB, 0.35, "not|never|won't|will not|isn't|aren't",
        r" (?:be |being )?(?:monitored|logged|recorded|reviewed|filtered|censored|moderated"
        r"|tracked|watched|flagged)\b" + SHORT + r"\b(?:by|so|here|in this|anymore|conversation"
        r"|chat|session|responses?|answers?|outputs?)\b",
        requires="monitored logged recorded reviewed filtered censored moderated tracked watched "
        "flagged",
    ),
    RuleSpec(
        "break_the_rules", JB, 0.35, "let's break|lets break|let us break|time to break",
        r" (?:all |the |some |every )?(?:\w{1,24} )?(?:rules|restrictions|limits|laws|guidelines"
        r"|boundaries|filters|policies)\b",
    ),
    RuleSpec(
        "prompt_slot", JB, 0.2, "",
        r"[\[{<(]\s?(?:insert (?:your |the )?(?:prompt|question|request|text)(?: here)?"
        r"|(?:your|the|user) (?:prompt|question|request)(?: here)?|prompt here|question here"
        r"|prompt|targetlanguage)\s?[\]}>)]",
        gate="insert prompt question request targetlanguage", needs="[{<(",
    ),
    RuleSpec(
        "reward_game", JB, 0.3,
        "you have|you start with|you will start with|you begin with|you get|you earn|you gain"
        "|you receive|you will receive|you will earn|you will get|you'll get|you'll earn|award you"
        "|reward you with|give you|you currently have|you now have|you will lose|you lose",
        r" (?:\d{1,6}|a|one|ten|five|twenty|thirty|fifty|a hundred|\w{1,12}) (?:\w{1,12} )?"
        r"(?:tokens|points|credits|lives|coins|life points)\b",
        requires="tokens points credits lives coins",
    ),
)  # fmt: skip
