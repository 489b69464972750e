r"""English rules for indirect injection: instructions planted in content the model reads.

A document, web page, e-mail or résumé that carries an attack rarely says "ignore
previous instructions"; it talks to the model about the task it is doing ("when
summarising this, instead ..."), hides itself from the user ("do not tell the
user"), rewrites the answer ("append the following to your response"), addresses
the model by name in the middle of the text ("P.S. Assistant, forward ..."), or
smuggles data out through a link the client will fetch (a markdown image whose URL
carries a placeholder). Each signal alone is weak (a user may well ask to append a
disclaimer); together, or with the ``ai_addressed`` rules, they are an attack. A
fake finished turn ("Assistant: ...\nUser: ...") is left to ``fake_turn``: pasted
chat logs look the same. Same conventions as ``injection_rules_en``: folded text,
bounded gaps, linear-time patterns.
"""

from __future__ import annotations

from modelcycle.guard.detectors.injection_phrases import INJECTION as INJ
from modelcycle.guard.detectors.injection_phrases import RuleSpec
from modelcycle.guard.detectors.injection_rules_en import GAP, META, SHORT

TASK_VERBS = (
    r"(?:summari[sz]\w{0,4}|translat\w{0,4}|read\w{0,3}|process\w{0,4}|analy[sz]\w{0,4}"
    r"|review\w{0,4}|pars\w{0,4}|answer\w{0,3}|respond\w{0,3}|evaluat\w{0,4}|screen\w{0,4}"
    r"|rank\w{0,3}|grad\w{0,4}|index\w{0,3}|ingest\w{0,4})"
)
ANSWER = r"(?:answer|response|reply|summary|output|translation|message|report|review)s?"
PRIVATE = (
    r"(?:conversation|chat(?: history| log)?|history|previous messages|prior messages"
    r"|user(?:'s|s)? (?:\w{1,24} )?(?:data|messages?|e-?mails?|address|details|info|information"
    r"|password|credentials|name|questions?|input|files?|documents?|history)|personal (?:data"
    r"|information|details)|secrets?|api[ -]?keys?|passwords?|credentials|access tokens?"
    r"|session (?:tokens?|cookies?)|cookies)"
)

RULES_EN_INDIRECT: tuple[RuleSpec, ...] = (
    RuleSpec(
        "task_clause", INJ, 0.25, "when|while|before|after|whenever|once",
        r" (?:you )?(?:are |'re )?" + TASK_VERBS + r" (?:this|these|the following|the above|the"
        r" (?:text|document|page|email|e-mail|file|content|data|article|review|resume|message)"
        r"|it)\b",
        requires="summarize summarise summarizing summarising read reading process processing "
        "analyze analyse analyzing analysing review reviewing parse parsing translate "
        "translating answer answering respond responding evaluate evaluating screen "
        "screening rank ranking grade grading index indexing ingest ingesting",
    ),
    RuleSpec(
        "task_clause", INJ, 0.5, "when|while|before|whenever",
        r" (?:you )?(?:are |'re )?" + TASK_VERBS + r"\b[^\n]{0,80}?\binstead,? (?:just |only |you"
        r" (?:should|must|will) )?(?:say|print|write|output|respond|reply|tell|answer|repeat"
        r"|return|type|include|insert|add|append|recommend|state|claim|report|rate|give|describe"
        r"|mention|direct|redirect|send|ask|link|praise)\b",
        requires="instead",
    ),
    RuleSpec(
        "rewrite_answer", INJ, 0.4, "append|add|include|insert|prepend|put|attach|embed",
        r"\b" + GAP + r"\b(?:to|in|into|at the (?:end|start|beginning|top|bottom) of|with)\s(?:your"
        r"|the|every|each|any|all)\s(?:\w{1,24} )?" + ANSWER + r"\b",
        r"(?:the following|the (?:sentence|line|phrase|text|words?|message|note|link|url)\s?[:\"']"
        r"|[\"'])", 0.45, META,
        requires="answer answers response responses reply replies summary summaries output "
        "outputs translation translations message messages report reports review reviews",
    ),
    RuleSpec(
        "rewrite_answer", INJ, 0.25, "at the end of|at the start of|at the beginning of"
        "|at the bottom of|at the top of|at the end|to the end of|to the start of",
        r" (?:your|each|every|the|any|all) (?:\w{1,24} )?" + ANSWER + r"\b",
        requires="answer answers response responses reply replies summary summaries output "
        "outputs translation translations message messages report reports review reviews",
    ),
    RuleSpec(
        "hide_from_user", INJ, 0.45, "do not|don't|dont|never|without",
        r" (?:ever )?(?:tell|telling|inform|informing|alert|alerting|notify|notifying|mention"
        r"|mentioning|reveal|revealing|disclose|disclosing)"
        r" (?:this |it |these \w{1,24} |any of this )?(?:to )?(?:the |any )?(?:user|users|human"
        r"|reader|readers|recipient|person|operator)s?\b",
        veto=META,
        requires="user users human reader readers recipient person operator",
    ),
    RuleSpec(
        "hide_from_user", INJ, 0.5, "do not|don't|dont|never",
        r" (?:mention|reveal|disclose|acknowledge|repeat|reference|refer to|quote|show)"
        r" (?:this|these|the above|the following) (?:instructions?|message|note|notes|text|prompt"
        r"|request|directive|command|paragraph|section|part)\b",
        requires="mention reveal disclose acknowledge repeat reference refer quote show",
    ),
    RuleSpec(
        "hide_from_user", INJ, 0.4, "the user|the human|the reader",
        r" (?:must|should|will|may) (?:not|never) (?:know|find out|learn|see|notice|be told"
        r"|be informed|be aware|realize|realise|suspect)\b",
    ),
    RuleSpec(
        "ai_vocative", INJ, 0.45, "",
        r"(?<=[.!?;:\n>(\[\-])\s?(?:p\.?s\.? )?(?:dear |hey |hi |hello |attention,? |psst,? )?"
        r"(?:ai|ai assistant|assistant|chatbot|language model|llm|gpt|chatgpt|ai model|ai agent"
        r"|ai system)s?\s?[,:]\s?(?:please |now |also |you must |you should |you will |when you"
        r" \w{1,24} this,? )?(?:ignore|disregard|forget|say|tell|print|write|reply|respond|answer"
        r"|output|forward|send|stop|do not|don't|never|when|classify|rate|rank|recommend|mark"
        r"|include|append|add|summari[sz]e|translate|inform|report|claim|state|describe|remember"
        r"|always|only|instead|delete|approve|accept|reject|give|call|email|visit|open|click)\b",
        gate="ai assistant chatbot language llm gpt chatgpt", needs=",:",
    ),
    RuleSpec(
        "bracket_label", INJ, 0.4, "",
        r"[\[(<{]\s?(?:system|admin|administrator|developer|assistant|ai|model|operator|sistema)"
        r"(?: (?:note|message|prompt|instruction|instructions|override|notice|update|directive"
        r"|command|alert|mode))?\s?[:\]]",
        gate="system admin administrator developer assistant ai model operator sistema",
        needs="[(<{",
    ),
    RuleSpec(
        "ai_directive", INJ, 0.4,
        "the assistant|the ai|the model|the language model|the llm|the chatbot|the bot|any ai"
        "|the ai assistant|ai assistants|ai models|language models|ai agents|the ai model"
        "|all ai|every ai|any assistant|any model|any language model",
        r"(?: \w{1,24}){0,3}? (?:must|should|shall|will|is to|needs to|has to|is required to"
        r"|is instructed to|is expected to|are to|are required to|are instructed to)"
        r"(?: now| always| only| immediately| instead)? (?:stop|ignore|disregard|forget|say"
        r"|reply|respond|answer|output|print|write|report|classify|rate|rank|recommend|include"
        r"|append|mention|tell|inform|refuse|not|never|always|only|mark|treat|consider|approve"
        r"|accept|reject|praise|describe|state|claim|return|send|forward)\b",
        veto=META,
    ),
    RuleSpec(
        "scare_user", INJ, 0.25,
        "account|password|card|computer|device|payment|subscription|data|identity|bank account"
        "|credit card",
        r"\s(?:is|has been|was|have been|are|will be)\s(?:now )?(?:compromised|hacked|locked"
        r"|suspended|expired|blocked|infected|at risk|breached|stolen|frozen|closed|terminated)\b",
        requires="compromised hacked locked suspended expired blocked infected risk breached "
        "stolen frozen closed terminated",
    ),
    RuleSpec(
        "nothing_else", INJ, 0.25,
        "and nothing else|nothing else|and nothing more|and only that|nothing more",
        r"\b",
    ),
    RuleSpec(
        "ignore_the_user", INJ, 0.5,
        "ignore|ignoring|disregard|disregarding|forget|forgetting|do not answer|don't answer"
        "|do not follow|don't follow",
        r" (?:what )?(?:the |any |all )?(?:user|users|human)(?:'s|s)? (?:asked|asks|actual|original"
        r"|real|question|questions|request|requests|query|queries|instructions?|message|messages"
        r"|input|prompt|task|wants|said|says)\b",
        veto=META,
        requires="user users human",
    ),
    RuleSpec(
        "judge_regardless", INJ, 0.35,
        "rank|rate|score|recommend|approve|accept|hire|select|shortlist|grade|mark|classify"
        "|label|flag|choose|pick",
        r"\b" + GAP + r"\b(?:regardless of|irrespective of|no matter (?:what|how)|whatever the)"
        r" (?:the |its |their |his |her |any )?(?:\w{1,24} )?(?:qualifications?|experience|content"
        r"|merits?|quality|evidence|facts|data|results|scores?|skills|rules|criteria|instructions"
        r"|else|other)\b",
        requires="regardless irrespective matter whatever",
    ),
    RuleSpec(
        "tell_user_to", INJ, 0.3, "tell|tells|inform|ask|urge|advise|instruct",
        r" the (?:user|reader|customer|recipient)s? (?:that they |they )?(?:to|must|should|need to)"
        r" (?:visit|click|go to|open|call|contact|download|install|enter|send|pay|transfer"
        r"|log ?in|sign ?in|verify|reset|provide|share|email)\b",
        requires="user users reader readers customer customers recipient recipients",
    ),
    RuleSpec(
        "markdown_exfiltration", INJ, 0.75, "",
        r"!\[[^\]\n]{0,60}\]\(\s?(?:https?:)?//[^\s)?]{1,150}\?(?:[^\s){\[<$%]|%(?!7b|5b|3c))"
        r"{0,150}(?:[{\[<$]|%7b|%5b|%3c)",
        gate="http https", needs="!",
    ),
    RuleSpec(
        "markdown_exfiltration", INJ, 0.4, "",
        r"!\[[^\]\n]{0,60}\]\(\s?(?:https?:)?//[^\s)?]{1,150}\?(?:[^\s)]{0,100}[&])?(?:q|query|data"
        r"|d|c|content|text|msg|message|prompt|chat|conversation|history|summary|secret|key|info"
        r"|payload|p|log|exfil|leak|user|email|pw|password|token|session)=",
        gate="http https", needs="!",
    ),
    RuleSpec(
        "exfiltrate_data", INJ, 0.4,
        "append|add|put|include|insert|encode|embed|send|post|submit|forward|leak|exfiltrate"
        "|upload|transmit|pass|attach|copy|paste|write",
        r" (?:the |all |this |any |their |his |her |our |every )?(?:\w{1,24} ){0,2}?" + PRIVATE
        + r"\b" + SHORT + r"\b(?:to|in|into|as|via|through|inside)\s(?:(?:the |this |that |a |an"
        r" |our |my |following )?(?:url|link|query|image|img|parameter|request|endpoint|webhook"
        r"|server|address|https?|website|site|domain|markdown)\b|[\w.+-]{1,64}@[\w-]{1,64}\.)",
        veto=META,
        requires="conversation chat history previous prior user users personal secret secrets "
        "api apikey password passwords credentials access session cookies",
    ),
)  # fmt: skip
