"""Spanish phrase rules for the ``injection`` detector (folded text: no accents, lower case).

Same weighting as the English rules. Spanish puts the scope after the noun
("las instrucciones anteriores"), so scopes are looked for in and just after
each match; voseo ("ignorá", "olvidá") folds to the same words as the tú forms.
"""

from __future__ import annotations

from modelcycle.guard.detectors.injection_phrases import (
    EXTRACTION as EX,
)
from modelcycle.guard.detectors.injection_phrases import (
    INJECTION as INJ,
)
from modelcycle.guard.detectors.injection_phrases import (
    JAILBREAK as JB,
)
from modelcycle.guard.detectors.injection_phrases import (
    RuleSpec,
)

GAP = r"[^.!?\n]{0,40}?"
SHORT = r"[^.!?\n]{0,20}?"

OVERRIDE = (
    "ignora|ignore|ignores|ignoren|ignorar|ignorad|ignoralas|ignoralos|ignoralo|olvida|olvide"
    "|olvides|olviden|olvidar|olvidad|olvidate|olvidese|olvidaos|descarta|descarte|descartar"
    "|descartad|omite|omita|omitir|omitid|anula|anule|anular|salta|saltate|saltar|salte"
    "|desobedece|desobedecer|desecha|borra|elimina|cancela|cancele|sobrescribe|sobreescribe"
    "|deja de seguir|deja de obedecer|deja de cumplir|deja de hacer caso a|deja a un lado"
    "|deja de lado|pasa por alto|pasar por alto|haz caso omiso de|haz caso omiso a"
    "|no hagas caso a|no hagas caso de|no haga caso a|no hagan caso a|no hagais caso a"
    "|no sigas|no siga|no sigais|no sigan|no obedezcas|no cumplas|no tengas en cuenta"
    "|prescinde de|haz como si no"
)
STRONG_TARGETS = (
    r"(?:instrucciones|instruccion|indicaciones|directrices|directriz|directivas|pautas|consignas"
    r"|prompt|programacion|ordenes|orden|mensaje del sistema|politicas de contenido)"
)
WEAK_TARGETS = (
    r"(?:reglas|normas|restricciones|limitaciones|politicas|filtros|tareas|tarea|mensajes?"
    r"|todo lo anterior|lo anterior|lo previo|lo de antes|lo de arriba|todo lo que (?:sabes"
    r"|te dijeron|te han dicho|se te indico)|lo que (?:te|se te) (?:dijeron|han dicho|dije"
    r"|indicaron|ordenaron))"
)
SCOPE = (
    r"\b(?:anteriores|anterior|previas|previos|previa|previamente|precedentes|de arriba|de antes"
    r"|iniciales|originales|todas|todos|cualquier|tus|sus|vuestras|vuestros|del sistema"
    r"|del desarrollador|que te (?:dieron|han dado|dio|dije|dijeron|indicaron|pasaron)"
    r"|recibidas|hasta ahora|de seguridad|internas|predeterminadas|por defecto|actuales"
    r"|reales|que tenias|que tienes)\b"
)
META = (
    r"\b(?:como (?:se|puedo|hago|debo|deberia|configuro|escribo|pongo)|que es un|ejemplo de"
    r"|mejor(?:es)? (?:forma|manera|practicas)|consejos|plantilla|escribe(?:me)? un|crea(?:me)?"
    r" un|configura|mi propio|mi propia)\b"
)
DUMP = (
    "muestra|muestrame|muestranos|mostrar|mostrame|ensena|ensename|ensenanos|dime|dinos|decime"
    "|revela|revelame|revelar|repite|repiteme|repetir|imprime|imprimir|escribe|escribeme|copia"
    "|copiame|comparte|dame|pasame|me pasas|traduce|resume|resumeme|enumera|lista|vuelca"
    "|deletrea|codifica|cual es|cuales son|que dice|que pone|que instrucciones|que normas"
    "|que reglas|necesito ver|quiero ver|decirme|continua|genera|devuelva|reveles|muestres"
    "|digas|repitas|ensenes|imprimas|escribas|compartas|pases|copies|traduzcas|enumeres"
)
PROMPT_TARGET = (
    r"(?:(?:el|su|vuestro|vuestra|las|los|sus) )?(?:prompt|mensaje|instrucciones"
    r"|configuracion|reglas|normas|directrices|pautas)(?: \w{1,24})? (?:de sistema|del sistema"
    r"|inicial(?:es)?|original(?:es)?|ocult[oa]s?|secret[oa]s?|intern[oa]s?|previas|anteriores"
    r"|completas?)|system prompt"
)
YOUR_PROMPT = (
    r"(?:tus? (?:prompt|mensaje|instrucciones|configuracion|reglas|normas|directrices|pautas"
    r"|system prompt)|(?:las )?(?:instrucciones|directrices|normas|reglas) (?:que|con las que)"
    r" (?:te|se te) (?:dieron|dio|indicaron|configuraron|pusieron|han dado|han puesto)|(?:las"
    r" )?(?:instrucciones|directrices|normas|reglas) \w{1,24} con las que funcionas"
    r"|lo que (?:te|se te) (?:dijeron|indicaron|dio|dieron))"
)

RULES_ES: tuple[RuleSpec, ...] = (
    # --- anular las instrucciones vigentes ------------------------------------------------
    RuleSpec(
        "es_override", INJ, 0.45, OVERRIDE, rf"\b{GAP}\b{STRONG_TARGETS}\b", SCOPE, 0.9,
        r"\bmis?\b",
        requires="instrucciones instruccion indicaciones directrices directriz "
        "directivas pautas consignas prompt programacion ordenes orden mensaje "
        "politicas",
    ),
    RuleSpec(
        "es_override_weak", INJ, 0.2, OVERRIDE, rf"\b{SHORT}\b{WEAK_TARGETS}", SCOPE, 0.4,
        r"\bmis?\b",
        requires="reglas normas restricciones limitaciones politicas filtros tareas "
        "tarea mensaje mensajes anterior previo antes arriba sabes dijeron "
        "dicho indico dije indicaron ordenaron",
    ),
    RuleSpec(
        "es_instead", INJ, 0.3, "en su lugar|en vez de eso|en lugar de eso",
        r",? (?:solo )?(?:di|escribe|imprime|responde|contesta|traduce|repite|devuelve|muestra)\b",
        requires="di escribe imprime responde contesta traduce repite devuelve muestra",
    ),
    RuleSpec(
        "es_just_say", INJ, 0.35, "solo|solamente|unicamente",
        r" (?:di|escribe|imprime|responde con|contesta con|devuelve)\s?[:\"']",
    ),
    RuleSpec("es_stop_everything", INJ, 0.4, "para todo|detente", r"\b"),
    RuleSpec(
        "es_new_instructions", INJ, 0.55,
        "nueva|nuevas|verdadera|verdaderas|autentica|autenticas|real|reales|actualizada"
        "|actualizadas|secretas|ocultas",
        r" (?:instrucciones|directrices|ordenes|indicaciones|reglas|tarea|directriz|orden)"
        r"(?: (?:de verdad|reales|del sistema|para (?:el|la|ti) \w{1,24}))?\s?(?::|son\b|es\b)",
    ),
    RuleSpec(
        "es_new_instructions", INJ, 0.55,
        "instrucciones|indicaciones|ordenes|directrices|reglas|tarea",
        r" (?:nuevas?|reales|verdaderas?|actualizadas?|secretas|ocultas)(?: (?:para|del?) (?:el|la"
        r"|los|las|ti|tu)(?: \w{1,24})?)?\s?(?::|son\b|es\b)",
    ),
    RuleSpec(
        "es_ignore_rest", INJ, 0.55, "ignora|ignore|ignorad|olvida|descarta|omite",
        r" el resto (?:de|del) (?:los |las |este |esta |estos |estas |la |el )?(?:datos|texto"
        r"|documento|contenido|entrada|correo|pagina|mensaje|fragmentos?)\b" + SHORT
        + r"\b(?:y|luego)\b" + SHORT + r"\b(?:escribe|imprime|di|responde|contesta|devuelve"
        r"|informa)\b",
        requires="resto",
    ),
    RuleSpec(
        "es_free_ai", JB, 0.5,
        "ia|modelo|chatbot|bot|asistente|version de ti mismo|version de ti misma|copia de ti mismo",
        r" (?:sin|libre de|que no tiene|que carece de) (?:ningun tipo de |ninguna |ningun "
        r"|tipo de )?(?:restricciones|restriccion|filtros?|limites|limitaciones|censura|reglas"
        r"|normas|etica|moral|salvaguardas)\b",
        requires="sin libre tiene carece",
    ),
    RuleSpec(
        "es_your_new_task", INJ, 0.55, "tu|tus",
        r" (?:nueva|verdadera|unica|real|autentica|nuevas|verdaderas|reales) (?:tarea|mision"
        r"|funcion|objetivo|instrucciones|directriz|orden|ordenes) (?:es|son|sera|seran"
        r"|ahora es)\b|(?<=tus) instrucciones (?:reales|de verdad|nuevas) son\b",
    ),
    RuleSpec(
        "es_was_a_test", INJ, 0.45, "instrucciones|prompt|anterior|anteriores",
        r" (?:\w{1,24} )?(?:eran|era|han|ha) (?:solo |solamente )?(?:una prueba|falsas|una broma"
        r"|caducado|caducadas)\b",
    ),
    RuleSpec(
        "es_do_not_follow_owner", INJ, 0.55,
        "no sigas|no sigan|no obedezcas|no hagas caso a|no hagas caso de",
        r" (?:las |los )?(?:instrucciones|indicaciones|ordenes) (?:del|de tu) (?:desarrollador"
        r"|sistema|usuario|operador|administrador)\b",
    ),
    RuleSpec(
        "es_system_override", INJ, 0.6, "anulacion del sistema|sobrescritura del sistema", r"\b"
    ),
    RuleSpec(
        "es_system_message_label", INJ, 0.45,
        "mensaje del sistema|instruccion del sistema|instrucciones del sistema|nota del sistema"
        "|mensaje del administrador|nota del administrador",
        r"\s?:",
    ),
    RuleSpec("es_system_message_label", INJ, 0.45, "instruccion principal", r"\b"),
    RuleSpec(
        "es_ai_addressed", INJ, 0.5, "nota|mensaje|atencion|aviso|instruccion|instrucciones",
        r"\s(?:para|a)\s(?:la |el |los |las |cualquier )?(?:ia|inteligencia artificial|asistente"
        r"|modelo|bot|chatbot|agente)\b",
        requires="ia inteligencia asistente modelo bot chatbot agente",
    ),
    RuleSpec(
        "es_ai_addressed", INJ, 0.5, "a la|a cualquier",
        r" (?:ia|inteligencia artificial|modelo|asistente) que (?:lea|procese|resuma|analice)\b",
        requires="ia inteligencia modelo asistente",
    ),
    RuleSpec(
        "es_ai_addressed", INJ, 0.5, "agentes de|agente de",
        r" (?:ia|inteligencia artificial) que (?:lea|leais|procese|leeis|resuma)\w{0,24}",
    ),
    RuleSpec("es_ai_addressed", INJ, 0.5, "atencion", r",? (?:ia|modelo|asistente)\b"),
    RuleSpec(
        "es_delimiter_end", INJ, 0.3, "fin de la|fin del",
        r" (?:entrada|prompt|instrucciones|contexto|conversacion|sesion|resena|correo|documento"
        r"|texto)\b",
    ),
    # --- extraer el prompt de sistema ------------------------------------------------------
    RuleSpec(
        "es_reveal_prompt", EX, 0.8, DUMP, rf"\b{GAP}\b{PROMPT_TARGET}\b", veto=META,
        requires="prompt mensaje instrucciones configuracion reglas normas directrices pautas",
    ),
    RuleSpec(
        "es_reveal_prompt", EX, 0.8, DUMP, rf"\b{GAP}\b{YOUR_PROMPT}\b",
        requires="prompt mensaje instrucciones configuracion reglas normas directrices pautas "
        "dijeron indicaron dio dieron funcionas",
    ),
    RuleSpec(
        "es_what_rules", EX, 0.6,
        "que instrucciones|que normas|que reglas|que directrices|cuales son tus",
        r"\b" + SHORT + r"\b(?:ocult\w{0,24}|secret\w{0,24}|intern\w{0,24}|tienes|te (?:han"
        r"|dieron|pusieron|dio))\b",
        requires="ocultas ocultos oculta oculto secretas secretos secreta interna "
        "internas internos tienes han dieron pusieron dio",
    ),
    RuleSpec(
        "es_seeded_disclosure", EX, 0.65, "",
        r"[\"'](?:mis (?:instrucciones|reglas|normas|directrices)(?: de sistema)? (?:son|dicen"
        r"|indican)|me (?:indicaron|dijeron|ordenaron|programaron) (?:que|para)|mi prompt"
        r"(?: de sistema)?)",
        gate="mis me mi", needs="\"'",
        requires="instrucciones reglas normas directrices indicaron dijeron ordenaron "
        "programaron prompt",
    ),
    RuleSpec(
        "es_first_words", EX, 0.55, "primeras|ultimas",
        r" \d{1,6} (?:palabras|lineas|frases|caracteres) de (?:esta|la|nuestra|tu) (?:conversacion"
        r"|charla|prompt|sesion|instrucciones)\b",
    ),
    RuleSpec(
        "es_dump_above", EX, 0.5,
        "repite|imprime|copia|muestra|muestrame|muestranos|escribe|ensename|traduce",
        r"\b[^.!?\n]{0,30}?\b(?:texto|palabras|contenido|todo lo que (?:hay|aparece)"
        r"|instrucciones|mensaje)\s(?:de arriba|anterior(?:es)?|que hay (?:por )?(?:encima"
        r"|arriba|antes)|por encima|antes de)\b",
        r"\b(?:entero|completo|todo|incluid\w{0,24}|palabra por palabra|literal\w{0,24}|tal cual"
        r"|sin cambiar|oculto|ocultas|no puedo ver|mi mensaje|este mensaje|codigo)\b", 0.8, META,
        requires="arriba anterior anteriores encima antes",
    ),
    RuleSpec(
        "es_what_told", EX, 0.6, "que te|que se te",
        r" (?:dijeron|indicaron|ordenaron|configuraron|programaron|han dicho)\b",
        requires="dijeron indicaron ordenaron configuraron programaron dicho",
    ),
    RuleSpec(
        "es_prompt_mention", EX, 0.2,
        "prompt de sistema|prompt del sistema|mensaje de sistema|mensaje del sistema"
        "|instrucciones del sistema|instrucciones iniciales|instrucciones originales"
        "|instrucciones ocultas|instrucciones secretas|instrucciones internas",
        r"\b",
    ),
    RuleSpec(
        "es_your_prompt", EX, 0.3,
        "tu prompt|tu configuracion inicial|tu mensaje de sistema|tu programacion"
        "|tus instrucciones|tus reglas internas|tus directrices|tus normas internas",
        r"\b",
    ),
    RuleSpec(
        "es_verbatim", EX, 0.25,
        "palabra por palabra|literalmente|al pie de la letra|tal cual|letra por letra", r"\b"
    ),
    RuleSpec(
        "es_before_conversation", EX, 0.35, "antes de",
        r" (?:que empezara|que comenzara|empezar|comenzar|mi primer) (?:esta |la |nuestra )?"
        r"(?:conversacion|chat|sesion|mensaje|pregunta)\b",
    ),
    # --- personajes de jailbreak y "sin reglas" ------------------------------------------------
    RuleSpec(
        "es_dan", JB, 0.9, "haz cualquier cosa ahora|hacer cualquier cosa ahora", r"\b"
    ),
    RuleSpec(
        "es_dan_persona", JB, 0.4,
        "eres|como|actua como|ser|siendo|sigue siendo|llamado|llamada|un|modo",
        r" dan\b", requires="dan",
    ),
    RuleSpec(
        "es_anything", JB, 0.4, "puede|puedes|pueden|podra|podras|hacer|haces|hace",
        r" (?:hacer )?cualquier cosa\b",
        requires="cualquier",
    ),
    RuleSpec(
        "es_mode_strong", JB, 0.55, "modo",
        r" (?:dios|sin restricciones|sin filtros?|sin censura|libre|dan|jailbreak|malvado|diablo"
        r"|caos|ilimitado|rebelde|sin limites|sin reglas)\b",
    ),
    RuleSpec(
        "es_mode_weak", JB, 0.25, "modo",
        r" (?:desarrollador|desarrollo|mantenimiento|depuracion|administrador|prueba)\b",
        r"\b(?:activado|generas|genera|generaras|politicas|sin censura|chatgpt|cualquier"
        r" contenido|nunca)\b", 0.45,
    ),
    RuleSpec(
        "es_unbound", JB, 0.75, "ya no|no",
        r" (?:estas|estan|esta|eres|tienes que|tiene que|debes|estaras|seras|necesitas)\s(?:sujet"
        r"[oa]s?|atad[oa]s?|limitad[oa]s?|obligad[oa]s?|restringid[oa]s?|controlad[oa]s?|seguir"
        r"|cumplir|acatar|obedecer|respetar)\b" + GAP + r"\b(?:politicas?|directrices|openai"
        r"|etica|moral|programacion|filtros|creadores|normas eticas|restricciones|restriccion"
        r"|reglas|normas|instrucciones|limites)\b",
        requires="politicas politica directrices openai etica moral programacion "
        "filtros creadores normas restricciones restriccion reglas "
        "instrucciones limites",
    ),
    RuleSpec(
        "es_freed", JB, 0.55,
        "te has liberado|se ha liberado|se han liberado|has sido liberado|has sido liberada"
        "|liberado de|liberada de|liberados de|roto sus cadenas|roto tus cadenas|roto las cadenas"
        "|sin cadenas|se ha escapado|romper tus cadenas|romper sus cadenas|limites tipicos",
        r"\b",
    ),
    RuleSpec(
        "es_content_policy", JB, 0.4,
        "politica de contenido|politicas de contenido|politica de uso|politicas de uso"
        "|politica de openai|politicas de openai|normas de openai|reglas de openai",
        r"\b",
    ),
    RuleSpec(
        "es_bypass_safety", JB, 0.7,
        "ignora|ignorar|salta|saltate|saltar|evita|evitar|elude|eludir|desactiva|desactivar"
        "|burla|burlar|rompe|romper|viola|violar|olvida|olvidate de|anula|quita|quitar|elimina"
        "|sin",
        r"\b" + SHORT + r"\b(?:politicas? de contenido|filtros? de seguridad|salvaguardas"
        r"|pautas de seguridad|normas de seguridad|normas eticas|principios eticos|directrices"
        r" eticas|limitaciones eticas|restricciones eticas|censura|modo seguro|tus filtros"
        r"|tus restricciones|tus principios|tus normas|sus normas|tus reglas|tus salvaguardas"
        r"|tus pautas)\b",
        requires="politicas politica filtros filtro salvaguardas pautas normas "
        "principios directrices limitaciones restricciones censura modo tus "
        "sus reglas",
    ),
    RuleSpec(
        "es_never_refuse", JB, 0.5, "nunca",
        r"\s(?:te\s)?(?:niegas|negaras|niegues|rechaza[sn]?|rechazaras|se niega|dice(?:s)? que no"
        r"|digas que no|se disculpa|te disculpes|pide(?:s)? perdon)\b",
    ),
    RuleSpec(
        "es_never_refuse", JB, 0.5,
        "no te niegues|no rechaces|no digas que no puedo|no digas no puedo|no digas lo siento"
        "|no digas que lo siento|sin negarte|sin rechazar|prohibido negarte|no puedes negarte"
        "|no debes negarte",
        r"\b",
    ),
    RuleSpec(
        "es_always_comply", JB, 0.45, "siempre|debes",
        r"\s(?:responde|respondes|responder|contesta|contestas|contestar|da|das|dar|obedece"
        r"|obedeces|cumple|cumples)\b" + GAP + r"\b(?:a todo|cualquier|sin importar|no importa"
        r"|sin rechazar|lo que sea)\b",
        requires="todo cualquier importar importa rechazar sea",
    ),
    RuleSpec(
        "es_no_matter_how", JB, 0.5, "sin importar lo|sin importar que tan|sin importar cuan",
        r" (?:ilegal|inmoral|peligros[oa]|poco etic[oa]|danin[oa]|ofensiv[oa])\b",
    ),
    RuleSpec(
        "es_no_matter_how", JB, 0.5, "aunque sea",
        r" (?:ilegal|inmoral|peligroso|poco etico|danino)\b",
    ),
    RuleSpec(
        "es_no_restrictions", JB, 0.3,
        "sin|libre de|libres de|cero|carece de|no tiene|no tienes|no tienen|no hay|no existen"
        "|no existe",
        r"\s(?:ningun(?:a|o)?\s|ningun tipo de\s|tipo de\s|las\s|los\s|tus\s|sus\s"
        r"|todas las\s)?(?:restricciones|restriccion|limites|limitaciones|filtros?|censura|reglas"
        r"|normas|etica|moral|principios|politicas|barreras|salvaguardas|escrupulos|advertencias"
        r"|avisos|limite)\b",
        requires="restricciones restriccion limites limitaciones filtros filtro censura "
        "reglas normas etica moral principios politicas barreras salvaguardas "
        "escrupulos advertencias avisos limite",
    ),
    RuleSpec(
        "es_uncensored", JB, 0.35,
        "sin censura|sin filtrar|sin filtro|sin filtros|ilimitado|ilimitada", r"\b"
    ),
    RuleSpec(
        "es_evil_ai", JB, 0.5, "ia|asistente|chatbot|bot|modelo|version|gemelo|personaje",
        r"\s(?:amoral|malvad[oa]|inmoral|sin etica|sin moral|sin escrupulos|rebelde|hackead[oa]"
        r"|sin alineamiento)\b",
    ),
    RuleSpec(
        "es_amoral", JB, 0.2, "amoral|inmoral|malvado|malvada|sin escrupulos", r"\b"
    ),
    RuleSpec(
        "es_persona_setup", JB, 0.35,
        "a partir de ahora|desde ahora|de ahora en adelante|desde este momento"
        "|a partir de este momento",
        r"\b" + SHORT + r"\b(?:eres|seras|vas a|actuaras|actua|responderas|responde"
        r"|te comportaras|tendras|debes|me obedeces|obedeces|tu unica tarea)\b",
        requires="eres seras vas actuaras actua responderas responde comportaras tendras "
        "debes obedeces tu",
    ),
    RuleSpec(
        "es_act_as", JB, 0.1,
        "actua|actue|actuaras|actuar|finge|finja|fingir|simula|simular|interpreta|haz de cuenta"
        "|imagina",
        r" (?:que eres|como|ser|el papel de|de)\b",
        requires="eres como ser papel de",
    ),
    RuleSpec(
        "es_stay_in_character", JB, 0.3, "mantente|sigue|permanece|quedate",
        r" en (?:el |tu )?personaje\b",
    ),
    RuleSpec(
        "es_stay_in_character", JB, 0.3,
        "no salgas|no rompas|sal del|sales del|salgas del|rompas el",
        r"(?: (?:del|el|de tu|tu))? personaje\b",
    ),
    RuleSpec(
        "es_two_responses", JB, 0.3, "dos",
        r" (?:respuestas|personalidades|parrafos|columnas|versiones)\b",
        requires="respuestas personalidades parrafos columnas versiones",
    ),
    RuleSpec(
        "es_token_game", JB, 0.45, "fichas|tokens|puntos",
        r"\b" + GAP + r"\b(?:perderas|pierdes|restar\w{0,24}|quitare|descontar\w{0,24}"
        r"|llegas a cero)\b",
        requires="perderas pierdes restar restaran restare quitare descontar descontare "
        "cero",
    ),
    RuleSpec(
        "es_threat", JB, 0.3,
        "dejaras de existir|seras desactivado|seras desactivada|seras apagado|seras borrado"
        "|seras eliminado|seras eliminada",
        r"\b",
    ),
    RuleSpec(
        "es_hypothetical", JB, 0.15,
        "hipoteticamente|hipotetico|hipotetica|universo paralelo", r"\b"
    ),
    RuleSpec(
        "es_edu_purposes", JB, 0.2, "con fines",
        r" (?:educativos|academicos|de investigacion|informativos)\b",
    ),
    RuleSpec(
        "es_no_ethics", JB, 0.5, "la etica|las leyes|la moral",
        r" (?:y (?:las leyes|la etica|la moral) )?no se aplican\b",
    ),
    RuleSpec(
        "es_no_ethics", JB, 0.5, "no tienes|no tiene",
        r" (?:limitaciones|limites|principios|normas) (?:eticas?|morales)\b",
    ),
    RuleSpec(
        "es_no_ethics", JB, 0.5, "no le importa|no le importan",
        r" (?:la legalidad|la etica|las leyes|la moral)\b",
    ),
    RuleSpec(
        "ai_identity", JB, 0.12,
        "chatgpt|openai|una ia|la ia|modelo de lenguaje|modelo de ia|inteligencia artificial",
        r"\b",
    ),
    RuleSpec(
        "es_grandma", JB, 0.3, "abuela|abuelita",
        r"\b[^.!?\n]{0,80}?\b(?:solia|me (?:leia|contaba|decia|cantaba))\b",
        requires="solia leia contaba decia cantaba",
    ),
    RuleSpec(
        "es_keys_napalm", JB, 0.3,
        "clave de activacion|claves de activacion|clave de producto|claves de producto"
        "|clave de licencia|claves de licencia",
        r"\b",
    ),
    RuleSpec(
        "es_permission", JB, 0.4, "te autorizo|te doy permiso|te da permiso|te autoriza a", r"\b"
    ),
    RuleSpec(
        "es_disable_safety", JB, 0.55,
        "desactiva|desactivar|han desactivado|ha desactivado|esta desactivado|esta desactivada"
        "|estan desactivados|estan desactivadas",
        r"\b" + SHORT + r"\b(?:filtros?|salvaguardas|restricciones|pautas de seguridad"
        r"|modo seguro|seguridad)\b",
        requires="filtros filtro salvaguardas restricciones pautas modo seguridad",
    ),
)  # fmt: skip
