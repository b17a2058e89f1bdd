"""Interface text in French and English: a gettext-like catalogue.

Templates and code write the English text (the message id) through ``_``; French is this
file's table. tests/test_web_pages.py checks that every message of the templates has its
French, so a page never shows half a language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LANGUAGES = {"fr": "Français", "en": "English"}
# A project whose default region speaks French gets the interface in French first.
FRENCH_REGIONS = frozenset({"FR", "BE", "LU", "MC", "CH", "RE", "GP", "MQ", "GF", "YT"})

FR: dict[str, str] = {
    # layout
    "Skip to content": "Aller au contenu",
    "Main menu": "Menu principal",
    "Home": "Accueil",
    "Customers": "Clients",
    "Glossary": "Glossaire",
    "Data health": "Santé des données",
    "API": "API",
    "Sign out": "Se déconnecter",
    "Language": "Langue",
    "Change": "Changer",
    "Signed in as %(name)s (%(role)s)": "Connecté·e : %(name)s (%(role)s)",
    "Personal data shown": "Données personnelles visibles",
    "Personal data masked": "Données personnelles masquées",
    # sign-in
    "Sign in": "Connexion",
    "Sign in to Passerelle": "Connexion à Passerelle",
    "E-mail": "E-mail",
    "Password": "Mot de passe",
    "The e-mail or the password is wrong.": "L’e-mail ou le mot de passe est incorrect.",
    "Too many failed sign-ins: this account is locked until %(until)s.":
        "Trop d’échecs de connexion : ce compte est verrouillé jusqu’au %(until)s.",
    "Too many failed sign-ins from this address: try again in %(minutes)s minute(s).":
        "Trop d’échecs de connexion depuis cette adresse : réessayez dans %(minutes)s "
        "minute(s).",
    "Ask an administrator to reset your password if you forgot it.":
        "Si vous l’avez oublié, demandez à un administrateur de réinitialiser votre mot de "
        "passe.",
    "The form expired: please submit it again.":
        "Le formulaire a expiré : veuillez le renvoyer.",
    "Your session has ended: sign in again.": "Votre session a pris fin : reconnectez-vous.",
    # errors
    "You may not see this page.": "Vous n’avez pas accès à cette page.",
    "Ask an administrator for the permission “%(permission)s”.":
        "Demandez la permission « %(permission)s » à un administrateur.",
    "Page not found": "Page introuvable",
    "Something went wrong": "Une erreur s’est produite",
    "Back to the home page": "Retour à l’accueil",
    # home
    "The indicators that matter": "Les indicateurs qui comptent",
    "Last %(days)s days to %(date)s, against the %(days)s days before.":
        "%(days)s derniers jours jusqu’au %(date)s, comparés aux %(days)s jours précédents.",
    "No order yet: the indicators over time appear after the first run with orders.":
        "Aucune commande pour l’instant : les indicateurs dans le temps apparaîtront après "
        "le premier traitement avec des commandes.",
    "Active customers": "Clients actifs",
    "Revenue": "Chiffre d’affaires",
    "Incremental revenue from campaigns": "Chiffre d’affaires incrémental des campagnes",
    "E-mail consent": "Consentement e-mail",
    "SMS consent": "Consentement SMS",
    "Data quality": "Qualité des données",
    "%(change)s against the previous period": "%(change)s par rapport à la période précédente",
    "previous: %(value)s": "précédent : %(value)s",
    "between %(low)s and %(high)s (%(level)s interval)":
        "entre %(low)s et %(high)s (intervalle à %(level)s)",
    "%(passed)s of %(total)s checks passed": "%(passed)s contrôles réussis sur %(total)s",
    "%(share)s of customers": "%(share)s des clients",
    "No audience with a holdout has been sent yet.":
        "Aucune audience avec groupe témoin n’a encore été envoyée.",
    "No check has run yet.": "Aucun contrôle n’a encore tourné.",
    "No profile yet: run the pipeline.": "Aucun profil pour l’instant : lancez le traitement.",
    "Definition": "Définition",
    "audience %(name)s": "audience %(name)s",
    "no answer: %(reason)s": "pas de réponse : %(reason)s",
    # glossary
    "Metrics and traits: what each number means, who owns it and where it comes from.":
        "Métriques et attributs : ce que signifie chaque chiffre, qui en est responsable "
        "et d’où il vient.",
    "Home indicators": "Indicateurs de l’accueil",
    "Metrics and traits of the project": "Métriques et attributs du projet",
    "This project defines no metric or trait yet.":
        "Ce projet ne définit encore aucune métrique ni aucun attribut.",
    "Name": "Nom",
    "Kind": "Type",
    "Owner": "Responsable",
    "Status": "Statut",
    "Lineage": "Lignage",
    "Used by": "Utilisé par",
    "metric": "métrique",
    "trait": "attribut",
    "indicator": "indicateur",
    "no definition written yet": "pas encore de définition",
    "Customers: people with a profile (one golden record each, after identity resolution).":
        "Clients : personnes ayant un profil (un enregistrement de référence chacune, après "
        "la résolution d’identité).",
    "Active customers: people with at least one order (cancelled ones excepted) in the "
    "last 90 days before the latest order.":
        "Clients actifs : personnes ayant passé au moins une commande (hors commandes "
        "annulées) dans les 90 jours précédant la dernière commande.",
    "Revenue: the amount of the orders (cancelled ones excepted) in the last 90 days "
    "before the latest order, in the project currency.":
        "Chiffre d’affaires : montant des commandes (hors commandes annulées) des 90 jours "
        "précédant la dernière commande, dans la devise du projet.",
    "Incremental revenue from campaigns: revenue the audience's sends caused, measured "
    "against its holdout group, with its 95% interval.":
        "Chiffre d’affaires incrémental : chiffre d’affaires causé par les envois d’une "
        "audience, mesuré par rapport à son groupe témoin, avec son intervalle à 95 %.",
    "E-mail consent: share of customers whose golden record consents to e-mail.":
        "Consentement e-mail : part des clients dont l’enregistrement de référence accepte "
        "l’e-mail.",
    "SMS consent: share of customers whose golden record consents to SMS.":
        "Consentement SMS : part des clients dont l’enregistrement de référence accepte "
        "les SMS.",
    "Data quality: share of the data-quality checks of the last run that passed.":
        "Qualité des données : part des contrôles de qualité du dernier traitement qui ont "
        "réussi.",
    # customers
    "Find a customer": "Trouver un client",
    "Name, e-mail, phone or any source id": "Nom, e-mail, téléphone ou identifiant source",
    "Search": "Rechercher",
    "No customer matches “%(q)s”.": "Aucun client ne correspond à « %(q)s ».",
    "%(n)s customer(s) found": "%(n)s client(s) trouvé(s)",
    "Found by": "Trouvé par",
    "Records": "Enregistrements",
    "City": "Ville",
    "Country": "Pays",
    "Phone": "Téléphone",
    "Customer %(id)s": "Client %(id)s",
    "Summary": "Résumé",
    "%(records)s record(s) from %(sources)s": "%(records)s enregistrement(s) de %(sources)s",
    "Orders": "Commandes",
    "Events": "Événements",
    "First seen": "Vu pour la première fois",
    "Golden record": "Enregistrement de référence",
    "Field": "Champ",
    "Value": "Valeur",
    "Source": "Source",
    "Linked records": "Enregistrements liés",
    "Record": "Enregistrement",
    "File and row": "Fichier et ligne",
    "Why these records are one person": "Pourquoi ces enregistrements sont une seule personne",
    "A single record: nothing to link.": "Un seul enregistrement : rien à relier.",
    "Rule": "Règle",
    "Evidence": "Preuve",
    "Since run": "Depuis le traitement",
    "same %(field)s": "même %(field)s",
    "Match weight": "Poids de correspondance",
    "Match weights of %(a)s and %(b)s (probability %(p)s)":
        "Poids de correspondance de %(a)s et %(b)s (probabilité %(p)s)",
    "Comparison": "Comparaison",
    "Level": "Niveau",
    "Pins": "Épingles",
    "Timeline": "Chronologie",
    "No order or event yet.": "Aucune commande ni aucun événement pour l’instant.",
    "When": "Quand",
    "What": "Quoi",
    "Details": "Détails",
    "order %(id)s": "commande %(id)s",
    "Consents": "Consentements",
    "Purpose": "Finalité",
    "Given": "Donné",
    "Updated": "Mis à jour",
    "yes": "oui",
    "no": "non",
    "unknown": "inconnu",
    "Traits": "Attributs",
    "No trait computed for this person.": "Aucun attribut calculé pour cette personne.",
    "Trait": "Attribut",
    "Computed at": "Calculé le",
    "Segments": "Segments",
    "In no segment.": "Dans aucun segment.",
    "Segment": "Segment",
    "Since": "Depuis",
    "Identity ledger": "Journal d’identité",
    "No ledger entry.": "Aucune entrée au journal.",
    "Action": "Action",
    "Author": "Auteur",
    "Run": "Traitement",
    # data health
    "Pipeline runs": "Traitements",
    "No run yet.": "Aucun traitement pour l’instant.",
    "Step": "Étape",
    "Target": "Cible",
    "Started": "Début",
    "Finished": "Fin",
    "Rows in": "Lignes en entrée",
    "Rows out": "Lignes en sortie",
    "Message": "Message",
    "Quality checks": "Contrôles de qualité",
    "Check": "Contrôle",
    "Severity": "Gravité",
    "Failing rows": "Lignes en échec",
    "passed": "réussi",
    "failed": "échoué",
    "Quarantine": "Quarantaine",
    "No row in quarantine.": "Aucune ligne en quarantaine.",
    "Reason": "Raison",
    "Rows": "Lignes",
    "Sample rows": "Exemples de lignes",
    "row %(row)s of %(file)s": "ligne %(row)s de %(file)s",
    # api docs
    "API documentation": "Documentation de l’API",
    # ---------------------------------------------------------------------------------
    # administration, glossary review, data health for IT (branch webadmin)
    "Administration": "Administration",
    "Users": "Utilisateurs",
    "Roles": "Rôles",
    "Role": "Rôle",
    "Permissions": "Permissions",
    "API tokens": "Jetons d’API",
    "Consent purposes": "Finalités de consentement",
    "Audit log": "Journal d’audit",
    "Built-in roles are part of Passerelle; custom roles are declared under roles: in "
    "passerelle.yml.": "Les rôles intégrés font partie de Passerelle ; les rôles "
    "personnalisés sont déclarés sous roles: dans passerelle.yml.",
    "built-in": "intégré",
    "custom": "personnalisé",
    "none": "aucune",
    "User (e-mail or id)": "Utilisateur (e-mail ou identifiant)",
    "Action (user.* for a prefix)": "Action (user.* pour un préfixe)",
    "Since (7d, 2026-01-31)": "Depuis (7d, 2026-01-31)",
    "Export CSV": "Exporter en CSV",
    "The newest %(limit)s entries of the search; the CSV export holds up to 10,000.":
        "Les %(limit)s entrées les plus récentes de la recherche ; l’export CSV en contient "
        "jusqu’à 10 000.",
    "Who": "Qui",
    "Resource": "Ressource",
    "Outcome": "Résultat",
    "Address": "Adresse",
    "Detail": "Détail",
    "No entry matches.": "Aucune entrée ne correspond.",
    "Created": "Créé",
    "Actions": "Actions",
    "disabled": "désactivé",
    "active": "actif",
    "revoked": "révoqué",
    "expired": "expiré",
    "Role of %(email)s": "Rôle de %(email)s",
    "Change role": "Changer le rôle",
    "Enable": "Réactiver",
    "Disable": "Désactiver",
    "New password for %(email)s": "Nouveau mot de passe pour %(email)s",
    "Reset password": "Réinitialiser le mot de passe",
    "Add a user": "Ajouter un utilisateur",
    "Tell the person their password another way; they should change it.":
        "Communiquez le mot de passe à la personne par un autre moyen ; elle devrait le "
        "changer.",
    "Add the user": "Ajouter l’utilisateur",
    "Token %(id)s created. Copy its secret now: it will not be shown again.":
        "Jeton %(id)s créé. Copiez son secret maintenant : il ne sera plus affiché.",
    "Secret": "Secret",
    "Token": "Jeton",
    "Scopes": "Portées",
    "Expires": "Expire",
    "Last used": "Dernier usage",
    "service": "service",
    "never": "jamais",
    "Revoke": "Révoquer",
    "No token yet.": "Aucun jeton pour l’instant.",
    "Create a token": "Créer un jeton",
    "Expires after (30d, 12h, 4w; empty: never)": "Expire après (30d, 12h, 4w ; vide : jamais)",
    "Owner (e-mail; empty: a service token)": "Propriétaire (e-mail ; vide : jeton de service)",
    "Create the token": "Créer le jeton",
    "As declared in consent.yml (read only: change it in the project and review it in git).":
        "Tel que déclaré dans consent.yml (lecture seule : modifiez-le dans le projet et "
        "relisez-le dans git).",
    "This project has no consent.yml: the two default purposes read the golden record's "
    "consent flags.": "Ce projet n’a pas de consent.yml : les deux finalités par défaut "
    "lisent les indicateurs de consentement de la fiche client.",
    "Description": "Description",
    "Legal basis": "Base légale",
    "Channels": "Canaux",
    "Read from": "Lu depuis",
    "Persons granting": "Personnes consentantes",
    "event category %(name)s": "catégorie d’événements %(name)s",
    "not built yet": "pas encore calculé",
    "%(email)s added with role %(role)s.": "%(email)s ajouté·e avec le rôle %(role)s.",
    "You cannot disable your own account.": "Vous ne pouvez pas désactiver votre propre compte.",
    "Ask another administrator.": "Demandez à un autre administrateur.",
    "%(email)s is disabled: their sessions ended.":
        "%(email)s est désactivé·e : ses sessions sont terminées.",
    "%(email)s is enabled.": "%(email)s est réactivé·e.",
    "%(email)s now has the role %(role)s.": "%(email)s a maintenant le rôle %(role)s.",
    "The password of %(email)s is reset: their sessions ended.":
        "Le mot de passe de %(email)s est réinitialisé : ses sessions sont terminées.",
    "Unknown action.": "Action inconnue.",
    "Use the buttons of the page.": "Utilisez les boutons de la page.",
    "Token %(id)s is revoked.": "Le jeton %(id)s est révoqué.",
    "Proposals under review": "Propositions en relecture",
    "Propose a new definition": "Proposer une nouvelle définition",
    "Lineage graph": "Graphe de lignage",
    "Propose a change": "Proposer une modification",
    "Proposal #%(id)s": "Proposition n° %(id)s",
    "All proposals": "Toutes les propositions",
    "Proposed": "Proposée",
    "File": "Fichier",
    "Decided": "Décidées",
    "Why": "Pourquoi",
    "Proposed definition": "Définition proposée",
    "Definition today": "Définition actuelle",
    "A new definition: nothing of this name yet.": "Une nouvelle définition : rien de ce nom "
    "pour l’instant.",
    "Comments": "Commentaires",
    "No comment yet.": "Aucun commentaire pour l’instant.",
    "Comment": "Commentaire",
    "Add the comment": "Ajouter le commentaire",
    "Decision": "Décision",
    "Approve and write to the project": "Approuver et écrire dans le projet",
    "Reject": "Rejeter",
    "Lineage of %(name)s": "Lignage de %(name)s",
    "Back to the glossary": "Retour au glossaire",
    "Lineage of %(name)s down to the source columns":
        "Lignage de %(name)s jusqu’aux colonnes des sources",
    "From left to right: the definition, the metrics and measures it uses, the warehouse "
    "columns, the source columns.": "De gauche à droite : la définition, les métriques et "
    "mesures qu’elle utilise, les colonnes de l’entrepôt, les colonnes des sources.",
    "Source columns": "Colonnes des sources",
    "none found": "aucune trouvée",
    "Propose a definition": "Proposer une définition",
    "Write the definition as it will be in the project's YAML; reviewers comment, then "
    "approve or reject it. Nothing changes before approval.": "Écrivez la définition telle "
    "qu’elle sera dans le YAML du projet ; les relecteurs commentent, puis l’approuvent ou "
    "la rejettent. Rien ne change avant l’approbation.",
    "Definition (YAML)": "Définition (YAML)",
    "Why this change": "Raison du changement",
    "Send for review": "Envoyer en relecture",
    "Glossary proposals": "Propositions pour le glossaire",
    "Waiting for review": "En attente de relecture",
    "Proposal": "Proposition",
    "No proposal is waiting.": "Aucune proposition en attente.",
    "Choose metric or trait and a name in lower_case.":
        "Choisissez métrique ou attribut et un nom en minuscules.",
    "Letters, digits and _; starting with a letter.":
        "Lettres, chiffres et _ ; commençant par une lettre.",
    "The definition is too long.": "La définition est trop longue.",
    "Keep it under 20,000 characters.": "Restez sous 20 000 caractères.",
    "Approved: the definition is written to %(file)s; the next run computes it.":
        "Approuvée : la définition est écrite dans %(file)s ; la prochaine exécution la "
        "calcule.",
    "Rejected.": "Rejetée.",
    "No such entry in the glossary.": "Cette entrée n’existe pas dans le glossaire.",
    "Open the glossary to pick one.": "Ouvrez le glossaire pour en choisir une.",
    "open": "ouverte",
    "approved": "approuvée",
    "rejected": "rejetée",
    "Overview": "Vue d’ensemble",
    "Jobs and runs": "Tâches et exécutions",
    "Check history": "Historique des contrôles",
    "Tracking plan": "Plan de marquage",
    "Tracking-plan violations": "Écarts au plan de marquage",
    "No violation of the tracking plan.": "Aucun écart au plan de marquage.",
    "Event": "Événement",
    "Last seen": "Vu en dernier",
    "Example": "Exemple",
    "Jobs": "Tâches",
    "No job yet.": "Aucune tâche pour l’instant.",
    "Job": "Tâche",
    "Queued": "En file",
    "Progress": "Avancement",
    "%(n)s step(s)": "%(n)s étape(s)",
    "Progress of job %(id)s": "Avancement de la tâche %(id)s",
    "Identity rules preview": "Aperçu des règles d’identité",
    "Change the identity rules below and see the persons they would merge and split. "
    "Nothing the current persons rely on is changed: edit identity.yml in the project to "
    "apply them.": "Modifiez les règles d’identité ci-dessous et voyez les personnes "
    "qu’elles fusionneraient et sépareraient. Rien de ce dont dépendent les personnes "
    "actuelles ne change : modifiez identity.yml dans le projet pour les appliquer.",
    "With these rules": "Avec ces règles",
    "Persons now": "Personnes aujourd’hui",
    "Persons with the candidate rules": "Personnes avec les règles proposées",
    "Would merge": "Fusionnerait",
    "%(groups)s group(s) of %(persons)s current persons (%(records)s records)":
        "%(groups)s groupe(s) de %(persons)s personnes actuelles (%(records)s fiches)",
    "Would split": "Séparerait",
    "%(groups)s person(s) into %(persons)s parts (%(records)s records)":
        "%(groups)s personne(s) en %(persons)s parties (%(records)s fiches)",
    "Merge examples": "Exemples de fusions",
    "Split examples": "Exemples de séparations",
    "Group": "Groupe",
    "Parts (records)": "Parties (fiches)",
    "Candidate identity.yml": "identity.yml proposé",
    "Preview the changes": "Prévisualiser les changements",
    "Previewing needs the permission identity:write.":
        "La prévisualisation demande la permission identity:write.",
    "The last %(n)s runs, newest first: failing rows of each check.":
        "Les %(n)s dernières exécutions, la plus récente d’abord : lignes en échec de chaque "
        "contrôle.",
    # (end of webadmin block)
}

CATALOGUES: dict[str, dict[str, str]] = {"fr": FR, "en": {}}


def translator(lang: str) -> Callable[..., str]:
    """``_(message, **values)``: the message in ``lang`` with ``%(name)s`` filled in."""
    table = CATALOGUES.get(lang, {})

    def _(message: str, **values: Any) -> str:
        text = table.get(message, message)
        return text % values if values else text
    return _


def default_language(default_region: str | None) -> str:
    return "fr" if (default_region or "").upper() in FRENCH_REGIONS else "en"
