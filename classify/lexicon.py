"""Concept cues: prior knowledge from the codebook about which words belong together.

Writers name the same thing in many ways (chef, baas, leidinggevende, MT, wethouder ...). A
model trained on a few thousand posts sees only some of those words; mapping each to a shared
concept token (``_c_leiding.persoon_``, and the coarse ``_c_leiding_``) lets what it learned
from one word carry over to the others, so a post written in words the seed corpus never used
still lands near its theme. The concepts are semantic fields, not labels: the model learns how
much each one counts, per theme. Fields for not-ideas (events, chat, meta-talk, news) and for
`overig` subjects (service, policy, democracy, sustainability, privacy) are here too.

Patterns: ``word`` matches a token that starts with it (a stem: ``vergader`` matches
``vergaderingen``); ``=word`` matches only the whole token; ``~word`` also matches inside a
compound (``~thuiswerk`` matches ``flexthuiswerkdag``); a pattern with a space is a phrase
matched in the whole normalised text. All patterns are lower-case without accents.
"""

from __future__ import annotations

import re
from functools import lru_cache

from classify.text import fold

CONCEPTS: dict[str, tuple[str, ...]] = {
    # --- open culture
    "open.transparant": (
        "=open", "openheid", "transparan", "openbaar", "publiceer", "=publiceren", "gepubliceerd", "online zetten",
        "zet online", "=online", "inzichtelijk", "=zichtbaar", "open data", "opendata", "open source", "opensource",
        "=woo", "=wob", "meelezen", "mee lezen", "meekijken", "=concept", "conceptversie", "in het openbaar",
        "open tenzij", "open-tenzij", "=delen", "=deel", "=gedeeld", "=deelt", "=dashboard", "openlijk", "=eerlijk",
        "=transparency", "=open-source", "in the open", "geheimhouding", "=geheim", "=verbergen", "=achterkamer",
    ),
    "open.fouten": (
        "=fout", "=fouten", "foutje", "=falen", "faalangst", "mislukk", "=experiment", "experimenteer",
        "experimenten", "uitproberen", "=proberen", "=probeer", "leren van", "recht op falen", "=fail", "=failure",
        "=durf", "=durven", "=lef", "=risico", "risico's", "=veilig", "veiligheid", "=angst", "=bang",
        "afrekencultuur", "=schuld", "schuldvraag", "=blame", "=stoppen", "=beeindigen", "=mistake", "=mistakes",
        "=toegeven", "=kwetsbaar", "=onzeker", "onzekerheid", "=ik weet het niet", "=afgeschoten",
    ),
    "open.feedback": (
        "feedback", "tegenspraak", "=kritiek", "kritisch", "aanspreken", "=dwars", "dwarsligger", "dwarsdenker",
        "luis in de pels", "nieuwsgierig", "verwonder", "vragen stellen", "=bevragen", "ter discussie",
        "heilige huisjes", "heilig huisje", "vastgeroest", "=gewoonte", "=gewoontes", "zo doen we het",
        "altijd zo gedaan", "=ego", "=waarom", "=kritisch", "=reflectie", "=evaluatie", "=evalueren",
    ),
    "open.cultuur": (
        "=cultuur", "=klimaat", "=sfeer", "=houding", "=mindset", "=culture", "=openness", "bedrijfscultuur",
    ),
    "open.sociaal": (
        "=blog", "=bloggen", "=tweet", "=tweeten", "twitter", "social media", "sociale media", "=woordvoerder",
        "woordvoering", "communicatieafdeling", "=afstemmen", "=op eigen naam", "=publiek",
    ),
    # --- leadership
    "leiding.persoon": (
        "manager", "management", "leidinggev", "=leiding", "leider", "baas", "bazen", "=boss", "chef", "teamleid",
        "afdelingshoofd", "~hoofd", "directeur", "directie", "=dg", "=sg", "secretaris-generaal", "topambtena",
        "=top", "=mt", "~managementteam", "mt-", "bestuurder", "wethouder", "burgemeester", "gedeputeerde",
        "gemeentesecretaris", "=cio", "=ceo", "=cfo", "leadership", "leader", "bovenbaas", "lijnmanager",
        "=bestuur", "supervisor", "kopstuk", "ambtelijke top", "=hogerop", "van bovenaf", "=bovenaf", "=minister",
        "staatssecretaris", "=college", "=raad van bestuur", "droomchef",
    ),
    "leiding.gedrag": (
        "loslat", "laat los", "los laten", "=loslaten", "rugdekking", "=dekking", "in bescherming", "=beschermen",
        "=voorbeeld", "voorbeeldgedrag", "goede voorbeeld", "=coach", "coachen", "coachend", "dienend",
        "faciliteer", "faciliteren", "=luisteren", "=luistert", "werkvloer", "werkbezoek", "micromanag",
        "=controleren", "=controle", "verantwoordelijkheid nemen", "=inspireren", "=visie", "=richting",
        "=afrekenen", "=aanspreekbaar", "=delegeren", "=vertrouwen", "vertrouw", "=trust", "=empower",
    ),
    # --- room for the professional
    "prof.persoon": (
        "professional", "vakman", "vakvrouw", "vakmens", "vakgeno", "vakmanschap", "vakkennis", "vakinhoud", "=vak",
        "=expert", "=experts", "specialist", "uitvoerder", "uitvoering", "=jurist", "=juristen", "inspecteur",
        "handhaver", "=boa", "wijkagent", "consulent", "klantmanager", "casemanager", "leerplicht", "wijkteam",
        "beleidsmedewerker", "beleidsadviseur", "beleidsmaker", "behandelaar", "=frontlinie", "=frontoffice",
        "=caseworker", "=caseworkers", "=social worker", "=doctor", "=teacher", "=nurse", "=agent", "=agenten",
    ),
    "prof.autonomie": (
        "=oordeel", "eigen oordeel", "=mandaat", "autonom", "autonomie", "zelfstandig", "zelf beslis", "zelf bepal",
        "zelf kiez", "zelf kies", "zelf regel", "zelf oploss", "zelf mogen", "zelf laten", "=zeggenschap",
        "regelruimte", "speelruimte", "handelingsruimte", "=ruimte", "=vrijheid", "=vrij", "beslisbevoeg",
        "bevoegdheid", "=bevoegd", "maatwerk", "=afwijken", "=afwijk", "uitzondering", "eigen budget", "eigen tijd",
        "eigen manier", "10%", "=tien procent", "twintig procent", "=discretion", "judgement", "judgment",
        "=autonomy", "=laag in de organisatie", "=leg het besluit", "=laag", "=toestemming", "=goedkeuring",
    ),
    "prof.last": (
        "protocol", "checklist", "stappenplan", "registrat", "verantwoord", "verantwoording", "=formulieren",
        "=dubbele controle", "=controles", "=paperwork", "=red tape", "=verantwoordingslast", "=afvinken",
        "=vinkjes", "=regeltjes", "=regels", "=kaders", "=richtlijn", "=richtlijnen",
    ),
    # --- managing by talent
    "talent.leren": (
        "=leren", "=leer", "=leert", "opleiding", "opleid", "cursus", "training", "scholing", "bijscholing",
        "e-learning", "leerbudget", "opleidingsbudget", "bijspijker", "=les", "lesgeven", "=college",
        "masterclass", "ontwikkel", "=groei", "=groeien", "=learning", "=training", "=course", "=courses",
        "=mentor", "mentoring", "mentorschap", "reverse mentoring", "=kennis bijspijkeren", "=studie",
        "=studeren", "=leerlijn", "=leergang", "=academie", "=collega-college",
    ),
    "talent.werving": (
        "werving", "=werven", "wervings", "sollicit", "vacature", "=cv", "=diploma", "=diploma's", "=selectie",
        "=aannemen", "zij-instrom", "zijinstrom", "instromer", "trainee", "stagiair", "=stage", "=stages",
        "onboarding", "inwerk", "=nieuwe collega", "=nieuwe collega's", "=jong", "=jonge", "jongere", "=starters",
        "=starter", "=hiring", "=recruit", "=recruitment", "=arbeidsmarkt", "=talenten",
    ),
    "talent.loopbaan": (
        "loopbaan", "carriere", "career", "doorgroei", "doorstroom", "promotie", "=functie", "=functies",
        "functiehuis", "functieprofiel", "functieomschrijving", "functiebeschrijving", "functiewaardering",
        "~schaal", "=salaris", "=belonen", "=beloning", "beoordel", "functioneringsgesprek", "ontwikkelgesprek",
        "gesprekscyclus", "=pop", "job crafting", "jobcrafting", "=rol", "=rollen", "van functie wisselen",
        "snuffelstage", "meeloopdag", "=meelopen", "=vertrek", "=vertrekken", "=vertrekt", "exitgesprek",
        "=behoud", "=behouden", "=pensioen", "=oudere", "=ouderen", "=senior", "=junior", "=expertlijn",
    ),
    "talent.sterkte": (
        "talent", "=sterkte", "=sterktes", "sterke kant", "=kwaliteiten", "competentie", "vaardigh", "=skill",
        "skills", "potentieel", "potentie", "=passie", "=energie", "=drijft", "wie wat kan", "=divers",
        "diversiteit", "inclusie", "inclusief", "=ambitie", "=ambities", "=kunnen", "=strengths", "=talents",
        "=hr", "~p&o", "personeelsbeleid", "=personeel", "medewerkersonderzoek",
    ),
    # --- networking
    "net.org": (
        "buurgemeente", "buurgemeenten", "=andere gemeente", "=andere gemeenten", "=gemeenten", "=provincies",
        "=provincie", "=waterschap", "waterschappen", "=rijk", "=rijksoverheid", "=ministeries", "=departementen",
        "andere overheid", "andere overheden", "=overheden", "interbestuurlijk", "=politie", "corporatie",
        "=uwv", "belastingdienst", "ketenpartner", "=keten", "universiteit", "hogeschool", "kennisinstelling",
        "=bedrijven", "=europa", "=buitenland", "=agencies", "=agency", "=municipalities", "=ministries",
        "andere organisatie", "andere organisaties", "=andere directie", "=andere afdeling", "=andere afdelingen",
        "=ggd", "=vng", "=ipo", "=uvw", "=buren",
    ),
    "net.verbinden": (
        "netwerk", "network", "communit", "verbind", "=verbinden", "connect", "samenwerk", "=samen", "=elkaar",
        "uitwissel", "kennis delen", "kennisdeling", "deel kennis", "=intervisie", "meetup", "lunchroulette",
        "=koffie", "koffietafel", "=borrel", "doetank", "co-creat", "cocreat", "co-creer", "cocreer",
        "=aan tafel", "rond de tafel", "=een tafel", "wiel opnieuw", "=wiel", "=bellen", "bel eens",
        "bel gewoon", "=ontmoeten", "=ontmoeting", "over de grenzen", "over grenzen", "grensoverschrijd",
        "=silo", "silo's", "=kokers", "verkokering", "eilandje", "=bruggen", "=partners", "partnership",
        "gelijkwaardig", "buitenwereld", "van buiten", "buiten de deur", "collega's van", "collega's bij",
        "ambtenaar 2.0", "ambtenaar20", "slimmernetwerk", "=together", "=collaborate", "=collaboration",
    ),
    "net.platform": (
        "pleio", "yammer", "linkedin", "=slack", "=whatsapp", "=forum", "=platform", "=kanaal", "=groepsapp",
        "=smoelenboek", "=wiki",
    ),
    "net.burger": (
        "bewoner", "inwoner", "burgerinitiatie", "bewonersinitiatie", "=de wijk", "=wijk", "=buurt",
        "=samenleving", "=maatschappij", "=citizens", "=residents",
    ),
    # --- flexibilisation
    "flex.plaats": (
        "~thuiswerk", "=thuis", "thuis werken", "vanuit huis", "flexplek", "flexwerk", "werkplek", "=kantoor",
        "kantoordag", "kantoordagen", "plaatsonafhankelijk", "plaats- en tijd", "tijd- en plaats", "hybride",
        "hybrid", "=remote", "op locatie", "ander overheidsgebouw", "rijkskantoor", "=hub", "=hubs",
        "=het nieuwe werken", "=hnw", "werken waar", "=stadskantoor", "=bureau", "=bureaus", "=work from home",
    ),
    "flex.tijd": (
        "werktijd", "werkuren", "=uren", "4x9", "4 x 9", "jaaruren", "deeltijd", "parttime", "9 tot 5",
        "negen tot vijf", "negen-tot-vijf", "9-tot-5", "nine to five", "=avond", "=avonden", "='s avonds",
        "=weekend", "=verlof", "ouderschapsverlof", "flexibele uren", "=werkweek", "=vrijdag", "=hours",
        "=overuren", "=roosters", "=rooster", "=tijdonafhankelijk",
    ),
    "flex.contract": (
        "=contract", "contracten", "aanstelling", "detacher", "mobiliteit", "flexpool", "~pool", "=inhuur",
        "=zzp", "=zzp'er", "=uitlenen", "=rouleren", "ambtenarenstatus", "=pas", "toegangspas", "rijkspas",
        "ambtenarenpas", "=tijdelijk", "vast contract", "flexib", "flexi", "=mobiel", "=inzetten",
        "=uitwisselingspool", "=secondment", "=rotation", "=ruilen", "ruilbeurs",
    ),
    "flex.middelen": (
        "=laptop", "laptops", "=tablet", "=ipad", "telefoon", "smartphone", "byod", "=device", "=devices",
        "videobel", "video bellen", "skype", "=zoom", "=vpn", "=camera", "=microfoon", "thuiswerkplek",
        "=videocall", "=beeldbellen",
    ),
    "flex.reizen": ("reistijd", "=file", "=files", "forens", "=reizen", "=trein", "=reiskosten", "=woon-werk"),
    # --- organising smarter
    "org.vergader": (
        "vergader", "=overleg", "overleggen", "=meeting", "meetings", "=agenda", "=verslag", "notulen",
        "besluitenlijst", "stuurgroep", "werkgroep", "klankbordgroep", "projectgroep", "=heidag", "=plenair",
        "overlegvrij", "=teams-calls", "=calls",
    ),
    "org.papier": (
        "paraaf", "parafen", "parafeer", "handtekening", "=nota", "=nota's", "notitie", "=memo", "rapportage",
        "=rapport", "=formulier", "adviesrapport", "=brief", "=stukken", "=dossier", "=dossiers", "=akkoord",
        "=akkoorden", "=bureaucratie", "bureaucrat",
    ),
    "org.proces": (
        "=proces", "processen", "procedure", "=stappen", "=lean", "=agile", "=scrum", "=sprint", "doorlooptijd",
        "wachttijd", "efficien", "effectief", "=dubbel", "dubbele", "=dubbelingen", "=schrappen", "=schrap",
        "=afschaffen", "=schaf", "=sneller", "=simpeler", "=eenvoudiger", "zaakgericht", "=pilot", "=pilots",
        "pilotitis", "opschal", "prototyp", "=overbodig", "=standaard", "=standaarden", "=workflow", "=templates",
        "=sjabloon", "=eenmalig", "=hergebruik", "=een keer", "=slimmer", "=verspilling", "=tijdverspilling",
    ),
    "org.structuur": (
        "=lagen", "tussenlaag", "hierarch", "organogram", "structuur", "reorganis", "=afdeling", "=afdelingen",
        "integraal", "integrale", "=team", "=teams", "shared service", "shared-service", "=ssc", "backoffice",
        "=een loket", "samenvoeg", "=samen doen", "=organiseren", "=organisatie",
    ),
    "org.ict": (
        "=ict", "~systeem", "~systemen", "applicatie", "=login", "=inlog", "~wachtwoord", "software", "=dms",
        "archief", "=intranet", "=sharepoint", "=excel", "=mail", "e-mail", "=digitaal", "digitalis", "=data",
        "gegevens", "=tool", "=tools", "=ai", "chatgpt", "=copilot", "=it", "=helpdesk", "=servicedesk",
    ),
    "org.geld": (
        "=budget", "budgetten", "begroting", "inkoop", "=inkopen", "=kosten", "=besparen", "=bezuinig",
        "=geld", "=euro", "=uitgaven",
    ),
    # --- other ideas (policy, democracy, the citizen's product)
    "overig.dienst": (
        "=loket", "=balie", "openingstijd", "website", "=app", "brieven", "=taal", "taalgebruik", "begrijpelijk",
        "=b1", "jip-en-janneke", "jip en janneke", "klantcontact", "dienstverlening", "=service", "wachtrij",
        "=digid", "=aanvraag", "=aanvragen", "vergunning", "=paspoort", "=klant", "klanten", "=burger",
        "=burgers", "ondernemer", "=mkb", "=betaaltermijn", "=factuur", "facturen", "proactief", "=kcc",
        "=callcenter", "=bereikbaar", "=bereikbaarheid",
    ),
    "overig.beleid": (
        "belasting", "heffing", "=aanslag", "aanslagen", "subsidie", "toeslag", "uitkering", "=beleid",
        "wetgeving", "=wet", "=wetten", "regeldruk", "schuldhulp", "=zorg", "=onderwijs", "=wonen",
        "woningbouw", "=parkeer", "=parkeren", "=afval", "=ozb", "=leges", "=boete", "=boetes", "=policy",
        "=tax", "=permits", "=permit",
    ),
    "overig.democratie": (
        "referendum", "burgerbegroting", "=loting", "burgerpanel", "burgerberaad", "gemeenteraad", "=raad",
        "=stemmen", "verkiezing", "jongerenraad", "=inspraak", "raadsleden", "=democratie", "=kiezers",
        "=petitie",
    ),
    "overig.duurzaam": (
        "duurzaam", "duurzaamheid", "=co2", "energie", "zonnepanel", "circulair", "=plastic", "=groen",
        "=fiets", "=fietsen", "=sustainable", "=footprint", "=vlees", "=kantine", "=catering",
    ),
    "overig.privacy": ("=privacy", "=avg", "beveilig", "toegankelijk", "=datalek", "=hack", "=security"),
    # --- not an idea: events, chat, meta-talk, news
    "event": (
        "webinar", "aanmeld", "meld je aan", "=opgeven", "=opgeven", "inschrijv", "livestream", "=live",
        "=slides", "presentatie", "terugkijk", "=bijeenkomst", "=sessie", "workshop", "=cafe", "=congres",
        "conferentie", "symposium", "=programma", "=spreker", "=sprekers", "=zaal", "=locatie", "=uitnodiging",
        "save the date", "=morgen", "=vanavond", "=vanmiddag", "=vandaag", "=zaterdag", "=zondag", "=maandag",
        "=dinsdag", "=woensdag", "=donderdag", "_date_", "_time_", "=register", "=tickets", "=gratis",
        "=plekken", "=stampijfabriek", "=rondetafel", "=deelnemers", "=dagvoorzitter",
    ),
    "chat": (
        "=bedankt", "=dank", "=dankjewel", "=thanks", "=thank", "=mooi", "=leuk", "=gezellig", "=inspirerend",
        "=inspirerende", "=genoten", "=haha", "=lol", "=zin", "=hoi", "=hallo", "=welkom", "=volg", "=volgen",
        "=follow", "=retweet", "=proost", "=goedemorgen", "=fijn", "=lekker", "=nice", "=cool", "=great",
        "=congrats", "=gefeliciteerd", "=applaus", "=respect", "=eens", "=klopt", "=precies", "=inderdaad",
        "=zeker", "=jep", "=yes", "=herkenbaar", "=tja", "=pff", "=zucht", "=grappig", "=hilarisch",
    ),
    "meta": (
        "=charter", "=hashtag", "=oproep", "tweet je", "tweet jij", "tweet mee", "denk mee", "meedenken",
        "mee denken", "=ideeen", "=reacties", "=reageren", "=artikel", "=lees", "=leestip", "=link",
        "=bericht", "=interview", "=peiling", "=poll", "=enquete", "=stelling", "=vraag", "wie weet",
        "wie heeft", "heeft iemand", "weet iemand", "iemand die", "=tips", "=voorbeelden", "=tip", "_url_",
        "=trending", "=draad", "=thread", "=klik", "=podcast", "=boek", "=aanrader", "=terugblik", "=samenvatting",
    ),
    "nieuws": (
        "=nieuws", "=kabinet", "=miljoen", "=miljard", "=procent", "=volgens", "=meldt", "=lanceert",
        "=presenteert", "maakt bekend", "=kamerbrief", "tweede kamer", "=persbericht", "=onderzoek", "=blijkt",
        "=rapport", "=start", "=starten", "=trekt", "=stemt in", "_rt_", "=cijfers", "=aantal", "=staking",
    ),
    "voorstel": (
        "=laat", "=laten", "=maak", "=maken", "=geef", "=geven", "=stop", "=stoppen", "=schaf", "=zet",
        "=moet", "=moeten", "=zou", "=zouden", "=mogen", "=waarom", "wat als", "=voorstel", "=idee",
        "=pleidooi", "=pleit", "=graag", "=hoog tijd", "=liever", "=beter", "=minder", "=meer", "=wens",
        "=wil", "=willen", "=begin", "=schrap", "=nooit", "=altijd", "=iedere", "=elke", "=elk", "=voortaan",
        "=gewoon", "=hoezo", "=should", "=let's", "=lets", "=make", "=why", "=let", "=give", "=weg met",
        "=navolgen", "=kopieren", "=kopiëren", "=verplicht", "=verplichten", "=invoeren", "=regel",
    ),
}

_PHRASES: dict[str, re.Pattern] = {}
_PHRASE_TEXTS: dict[str, tuple[str, ...]] = {}  # a phrase can only match where its literal text occurs
_PREFIX: list[tuple[str, str]] = []
_INFIX: list[tuple[str, str]] = []


def _compile() -> None:
    for concept, patterns in CONCEPTS.items():
        phrases = []
        for pat in (fold(p) for p in patterns):
            if " " in pat or pat.startswith("_"):
                phrases.append(re.escape(pat.lstrip("=")))
            elif pat.startswith("="):
                continue  # whole-token patterns: see _WHOLE_MULTI
            elif pat.startswith("~"):
                _INFIX.append((pat[1:], concept))
            else:
                _PREFIX.append((pat, concept))
        if phrases:
            _PHRASES[concept] = re.compile(r"(?<!\w)(?:" + "|".join(phrases) + r")")
            _PHRASE_TEXTS[concept] = tuple(sorted({
                p.lstrip("=") for p in (fold(q) for q in patterns) if " " in p or p.startswith("_")}))


_compile()
_WHOLE_MULTI: dict[str, tuple[str, ...]] = {}
for _concept, _patterns in CONCEPTS.items():
    for _pat in (fold(p) for p in _patterns):
        if _pat.startswith("=") and " " not in _pat:
            _WHOLE_MULTI[_pat[1:]] = tuple(sorted(set(_WHOLE_MULTI.get(_pat[1:], ())) | {_concept}))


@lru_cache(maxsize=300_000)
def token_concepts(token: str) -> tuple[str, ...]:
    found = set(_WHOLE_MULTI.get(token, ()))
    for stem, concept in _PREFIX:
        if token.startswith(stem):
            found.add(concept)
    for part, concept in _INFIX:
        if part in token:
            found.add(concept)
    return tuple(sorted(found))


def concepts(normalised: str, toks: list[str]) -> list[str]:
    """Concept tokens for a normalised text and its tokens (one per match, repeats kept)."""
    out = []
    for tok in toks:
        out.extend(token_concepts(tok))
    for concept, rx in _PHRASES.items():
        if any(phrase in normalised for phrase in _PHRASE_TEXTS[concept]):  # cheap check before the regex
            out.extend([concept] * len(rx.findall(normalised)))
    result = []
    for c in out:
        result.append(f"_c_{c}_")
        if "." in c:  # a fine field also counts for its coarse one (leiding.gedrag -> leiding)
            result.append(f"_c_{c.split('.')[0]}_")
    return result
