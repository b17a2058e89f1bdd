"""Interface text in French and English: a gettext-like catalogue.

Templates and code write the English text (the message id) through ``_``; French is this
file's table. tests/test_web_pages.py checks that every message of the templates has its
French, so a page never shows half a language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from passerelle.web.i18n_setup import FR_SETUP

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
    "Sign in with %(provider)s": "Se connecter avec %(provider)s",
    "Or with your e-mail and password:": "Ou avec votre e-mail et votre mot de passe :",
    "Single sign-on failed: %(reason)s": "La connexion unique a échoué : %(reason)s",
    "Single sign-on is not set up for this Passerelle.":
        "La connexion unique n’est pas configurée pour ce Passerelle.",
    "Sign in with your e-mail and password.":
        "Connectez-vous avec votre e-mail et votre mot de passe.",
    "Start the sign-in again.": "Recommencez la connexion.",
    "If it happens again, tell IT.": "Si cela se reproduit, prévenez l’équipe informatique.",
    "the sign-in provider did not answer.": "le fournisseur d’identité n’a pas répondu.",
    "Try again in a moment; if it lasts, tell IT.":
        "Réessayez dans un instant ; si cela dure, prévenez l’équipe informatique.",
    "the sign-in provider is not the one set up.":
        "le fournisseur d’identité n’est pas celui qui est configuré.",
    "no sign-in of this browser is waiting for this answer (10 minutes at most).":
        "aucune connexion de ce navigateur n’attend cette réponse (10 minutes au plus).",
    "the sign-in provider's answer is incomplete.":
        "la réponse du fournisseur d’identité est incomplète.",
    "the sign-in provider refused the sign-in.":
        "le fournisseur d’identité a refusé la connexion.",
    "Check with IT that your account may use Passerelle.":
        "Vérifiez avec l’équipe informatique que votre compte peut utiliser Passerelle.",
    "the sign-in provider refused to confirm the sign-in.":
        "le fournisseur d’identité a refusé de confirmer la connexion.",
    "the sign-in provider's answer could not be verified.":
        "la réponse du fournisseur d’identité n’a pas pu être vérifiée.",
    "the sign-in provider has not verified your e-mail address.":
        "le fournisseur d’identité n’a pas vérifié votre adresse e-mail.",
    "Verify it at the provider, then sign in again.":
        "Faites-la vérifier chez le fournisseur, puis reconnectez-vous.",
    "the sign-in provider gave no e-mail address.":
        "le fournisseur d’identité n’a donné aucune adresse e-mail.",
    "your e-mail domain may not sign in to this Passerelle.":
        "votre domaine e-mail ne peut pas se connecter à ce Passerelle.",
    "Sign in with your work account.": "Connectez-vous avec votre compte professionnel.",
    "your sign-in carries no role for Passerelle.":
        "votre connexion ne porte aucun rôle pour Passerelle.",
    "Ask IT to give you a role for Passerelle at the sign-in provider.":
        "Demandez à l’équipe informatique de vous donner un rôle pour Passerelle chez le "
        "fournisseur d’identité.",
    "your role at the sign-in provider is not one Passerelle knows.":
        "votre rôle chez le fournisseur d’identité n’est pas connu de Passerelle.",
    "Ask IT to map it in passerelle.yml (sso: role_map).":
        "Demandez à l’équipe informatique de l’associer dans passerelle.yml (sso: role_map).",
    "your Passerelle account is disabled.": "votre compte Passerelle est désactivé.",
    "Ask an administrator to enable it.": "Demandez à un administrateur de le réactiver.",
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

# ---- segment builder, audiences, jobs, campaigns and experiments (branch webseg) --------
FR.update({
    # segments
    "Segments": "Segments",
    "Build a new segment": "Construire un nouveau segment",
    "This project defines no segment yet.": "Ce projet ne définit encore aucun segment.",
    "Description": "Description",
    "Members at the last refresh": "Membres au dernier rafraîchissement",
    "Audiences": "Audiences",
    "File": "Fichier",
    "New segment": "Nouveau segment",
    "Segment builder": "Constructeur de segments",
    "Saved in %(file)s: IT reviews it in git like any project file.":
        "Enregistré dans %(file)s : l’IT le relit dans git comme tout fichier du projet.",
    "The project's loader refused the segment:": "Le chargeur du projet a refusé le segment :",
    "A segment file named %(file)s already exists: tick “Replace the existing file” to "
    "overwrite it.":
        "Un fichier de segment %(file)s existe déjà : cochez « Remplacer le fichier existant » "
        "pour l’écraser.",
    "The file changed since you opened it: tick “Replace the existing file” to overwrite the "
    "other change.":
        "Le fichier a changé depuis que vous l’avez ouvert : cochez « Remplacer le fichier "
        "existant » pour écraser l’autre modification.",
    "Live count": "Comptage en direct",
    "The count updates as you edit.": "Le comptage se met à jour pendant que vous modifiez.",
    "Why is this person in or out?": "Pourquoi cette personne est-elle dedans ou dehors ?",
    "Customer id": "Identifiant client",
    "Explain": "Expliquer",
    "Audience": "Audience",
    "Channel": "Canal",
    "Holdout": "Groupe témoin",
    "the channel's": "celle du canal",
    "Destination": "Destination",
    "Export": "Exporter",
    "No destination is defined: IT adds destinations/*.yml.":
        "Aucune destination n’est définie : l’IT ajoute destinations/*.yml.",
    "Exporting needs the permission “%(permission)s”.":
        "L’export demande la permission « %(permission)s ».",
    "No audience yet.": "Aucune audience pour l’instant.",
    "Turn this segment into an audience": "Faire de ce segment une audience",
    "Audience name (a-z, 0-9, _)": "Nom de l’audience (a-z, 0-9, _)",
    "Consent purpose": "Finalité du consentement",
    "the channel's purpose": "la finalité du canal",
    "Holdout: share kept out of every send to measure the campaign (%)":
        "Groupe témoin : part tenue à l’écart de chaque envoi pour mesurer la campagne (%)",
    "Create the audience": "Créer l’audience",
    "%(id)s is IN the segment.": "%(id)s est DANS le segment.",
    "%(id)s is OUT of the segment.": "%(id)s est HORS du segment.",
    "meets": "remplit",
    "does not meet": "ne remplit pas",
    "group %(n)s": "groupe %(n)s",
    "condition %(n)s": "condition %(n)s",
    "Profile field": "Champ du profil",
    "Did an event": "A fait un événement",
    "Bought": "A acheté",
    "Is in segment": "Est dans le segment",
    "is": "est",
    "is not": "n’est pas",
    "less than": "moins de",
    "at most": "au plus",
    "more than": "plus de",
    "at least": "au moins",
    "is one of (a, b, c)": "est l’un de (a, b, c)",
    "is none of (a, b, c)": "n’est aucun de (a, b, c)",
    "between": "entre",
    "contains": "contient",
    "starts with": "commence par",
    "is unknown": "est inconnu",
    "is known": "est connu",
    "People must meet": "Les personnes doivent remplir",
    "every group (AND)": "tous les groupes (ET)",
    "at least one group (OR)": "au moins un groupe (OU)",
    "Group %(n)s": "Groupe %(n)s",
    "Its conditions": "Ses conditions",
    "all hold (AND)": "toutes vraies (ET)",
    "at least one holds (OR)": "au moins une vraie (OU)",
    "NOT: exclude the people of this group": "SAUF : exclure les personnes de ce groupe",
    "not": "pas",
    "Kind of condition %(n)s": "Type de la condition %(n)s",
    "choose…": "choisir…",
    "Comparison": "Comparaison",
    "value": "valeur",
    "High value (between)": "Valeur haute (entre)",
    "and (between)": "et (entre)",
    "Event": "Événement",
    "choose an event…": "choisir un événement…",
    "times in the last (days)": "fois dans les derniers (jours)",
    "with property": "avec la propriété",
    "Category": "Catégorie",
    "any category": "toute catégorie",
    "orders in the last (days)": "commandes dans les derniers (jours)",
    "Remove condition %(n)s of group %(g)s": "Retirer la condition %(n)s du groupe %(g)s",
    "+ Condition in group %(n)s": "+ Condition dans le groupe %(n)s",
    "Remove group %(n)s": "Retirer le groupe %(n)s",
    "+ Group": "+ Groupe",
    "Compare and break down": "Comparer et ventiler",
    "Overlap with": "Recoupement avec",
    "Break the members down by": "Ventiler les membres par",
    "nothing": "rien",
    "Save": "Enregistrer",
    "Name (a-z, 0-9, _)": "Nom (a-z, 0-9, _)",
    "Who is in it, in plain words": "Qui en fait partie, en mots simples",
    "Owner (team or person)": "Responsable (équipe ou personne)",
    "Refresh every (15m, 2h, 1d)": "Rafraîchir toutes les (15m, 2h, 1d)",
    "Replace the existing file": "Remplacer le fichier existant",
    "Save as segments/NAME.yml": "Enregistrer sous segments/NOM.yml",
    "Saving needs the permission “%(permission)s”.":
        "L’enregistrement demande la permission « %(permission)s ».",
    "people, %(share)s of %(total)s customers": "personnes, %(share)s des %(total)s clients",
    "Count per group": "Comptage par groupe",
    "Group": "Groupe",
    "Alone": "Seul",
    "With the groups above": "Avec les groupes au-dessus",
    "Removed or added": "Retirés ou ajoutés",
    "Sample of members": "Échantillon de membres",
    "Nobody meets these conditions.": "Personne ne remplit ces conditions.",
    "Overlap with other segments": "Recoupement avec les autres segments",
    "People in all of them": "Personnes dans tous",
    "this segment": "ce segment",
    "Members by %(field)s": "Membres par %(field)s",
    "People": "Personnes",
    "Bar": "Barre",
    "There is no segment named “%(name)s”.": "Il n’y a pas de segment nommé « %(name)s ».",
    "This segment nests its conditions deeper than the builder's forms: edit its file in git.":
        "Ce segment imbrique ses conditions plus profondément que les formulaires du "
        "constructeur : modifiez son fichier dans git.",
    "The holdout is a percentage between 0 and 50.":
        "Le groupe témoin est un pourcentage entre 0 et 50.",
    "Choose one of the segment's audiences and a destination.":
        "Choisissez l’une des audiences du segment et une destination.",
    "Everyone is counted until a condition is filled in.":
        "Tout le monde est compté tant qu’aucune condition n’est remplie.",
    "“%(text)s” is not a whole number.": "« %(text)s » n’est pas un nombre entier.",
    "“%(text)s” is not a number.": "« %(text)s » n’est pas un nombre.",
    "“%(text)s” is not yes or no.": "« %(text)s » n’est ni oui ni non.",
    "Write the values separated by commas.": "Écrivez les valeurs séparées par des virgules.",
    "“between” needs a low and a high value.":
        "« entre » demande une valeur basse et une valeur haute.",
    "A condition needs a value.": "Une condition demande une valeur.",
    "Choose what the condition is about.": "Choisissez sur quoi porte la condition.",
    "Choose an event.": "Choisissez un événement.",
    "%(where)s: %(problem)s": "%(where)s : %(problem)s",
    "The name must start with a lower-case letter and use only a-z, 0-9 and _ (63 "
    "characters at most).":
        "Le nom commence par une minuscule et n’utilise que a-z, 0-9 et _ (63 caractères au "
        "plus).",
    "Write who is in the segment (description) and who answers for it (owner).":
        "Écrivez qui fait partie du segment (description) et qui en répond (responsable).",
    "The segment “%(name)s” is defined in %(file)s: edit it there, or choose another name.":
        "Le segment « %(name)s » est défini dans %(file)s : modifiez-le là, ou choisissez un "
        "autre nom.",
    # jobs
    "Job %(id)s": "Tâche %(id)s",
    "As of %(time)s (run %(run)s).": "Au %(time)s (exécution %(run)s).",
    "As of %(time)s: the data changed since, so these figures are being computed again.":
        "Au %(time)s : les données ont changé depuis, ces chiffres sont donc recalculés.",
    "These figures are being computed; the page shows them when they are ready.":
        "Ces chiffres sont en cours de calcul ; la page les affiche dès qu’ils sont prêts.",
    "There is no job %(id)s.": "Il n’y a pas de tâche %(id)s.",
    "step: %(step)s": "étape : %(step)s",
    "Progress": "Avancement",
    "Waiting for %(n)s earlier job(s) of the queue.":
        "En attente de %(n)s tâche(s) plus ancienne(s) de la file.",
    "Queued by": "Demandée par",
    "Queued at": "Demandée le",
    "Read the campaign results": "Lire les résultats des campagnes",
    "queued": "en file",
    "running": "en cours",
    "succeeded": "réussie",
    "failed": "échoué",
    "cancelled": "annulée",
    "interrupted": "interrompue",
    # campaigns
    "Campaigns": "Campagnes",
    "Campaigns and experiments": "Campagnes et expériences",
    "Experiments and the sample-size calculator":
        "Expériences et calcul de la taille d’échantillon",
    "Orders counted within (days) of a touch": "Commandes comptées dans les (jours) suivant "
                                               "un contact",
    "Show": "Afficher",
    "Audiences measured against their holdout": "Audiences mesurées contre leur groupe témoin",
    "What the sends caused: people who received them against the holdout kept out at random. "
    "Each figure comes with its 95 % interval.":
        "Ce que les envois ont causé : les personnes qui les ont reçus comparées au groupe "
        "témoin tiré au hasard. Chaque chiffre est donné avec son intervalle à 95 %.",
    "Dot: estimate; line: interval; dashed line: zero.":
        "Point : estimation ; trait : intervalle ; pointillés : zéro.",
    "Reached": "Touchés",
    "Conversion lift": "Hausse de conversion",
    "Incremental revenue": "Chiffre d’affaires incrémental",
    "Incremental ROI": "ROI incrémental",
    "Campaign results": "Résultats des campagnes",
    "No campaign touch yet.": "Aucun contact de campagne pour l’instant.",
    "Campaign": "Campagne",
    "Spend": "Dépense",
    "Conversions": "Conversions",
    "Cost per acquisition": "Coût par acquisition",
    "ROAS": "ROAS",
    "Attribution models side by side": "Les modèles d’attribution côte à côte",
    "Computing…": "Calcul en cours…",
    "Show this section alone": "Afficher cette section seule",
    "Each model shares the same conversions between the channels differently; where they "
    "disagree, no single model is the truth.":
        "Chaque modèle répartit les mêmes conversions entre les canaux à sa façon ; là où ils "
        "divergent, aucun modèle seul n’est la vérité.",
    "No conversion to attribute yet.": "Aucune conversion à attribuer pour l’instant.",
    "%(attributed)s of %(total)s conversions had a touch in the %(days)s days before.":
        "%(attributed)s conversions sur %(total)s avaient un contact dans les %(days)s jours "
        "précédents.",
    "Revenue within %(days)s days of the campaign, with its 95 %% interval":
        "Chiffre d’affaires dans les %(days)s jours suivant la campagne, avec son intervalle "
        "à 95 %%",
    "Incremental revenue against the holdout, with its interval":
        "Chiffre d’affaires incrémental contre le groupe témoin, avec son intervalle",
    "Conversions credited to each channel by each attribution model":
        "Conversions créditées à chaque canal par chaque modèle d’attribution",
    "first touch": "premier contact",
    "last touch": "dernier contact",
    "last non-direct touch": "dernier contact non direct",
    "linear": "linéaire",
    "time decay": "décroissance temporelle",
    "position based": "selon la position",
    "Markov": "Markov",
    "Shapley": "Shapley",
    # experiments
    "Experiments": "Expériences",
    "Experiments of the project": "Expériences du projet",
    "No experiment yet.": "Aucune expérience pour l’instant.",
    "Experiment": "Expérience",
    "People exposed": "Personnes exposées",
    "Last seen": "Vu pour la dernière fois",
    "ok": "ok",
    "defined, never seen": "définie, jamais vue",
    "seen, not defined": "vue, non définie",
    "Set up an experiment: how many people does it need?":
        "Préparer une expérience : de combien de personnes a-t-elle besoin ?",
    "Primary metric": "Métrique principale",
    "a conversion rate": "un taux de conversion",
    "an average (revenue per person…)": "une moyenne (chiffre d’affaires par personne…)",
    "Today's conversion rate (%)": "Taux de conversion actuel (%)",
    "Standard deviation of the average (for an average)":
        "Écart-type de la moyenne (pour une moyenne)",
    "Smallest change worth detecting (% of the rate; in units for an average)":
        "Plus petit changement à détecter (% du taux ; en unités pour une moyenne)",
    "False-positive risk (alpha)": "Risque de faux positif (alpha)",
    "Power (chance to detect a real change)": "Puissance (chance de détecter un vrai changement)",
    "Share of people in the variant (%)": "Part des personnes dans la variante (%)",
    "Calculate": "Calculer",
    "You need %(control)s people in control and %(variant)s in the variant (%(total)s in all).":
        "Il faut %(control)s personnes dans le groupe de contrôle et %(variant)s dans la "
        "variante (%(total)s en tout).",
    "Then write the experiment in experiments/NAME.yml (see docs/measurement.md) with this "
    "minimum detectable effect, so the read-out says when it is underpowered.":
        "Écrivez ensuite l’expérience dans experiments/NOM.yml (voir docs/measurement.md) avec "
        "cet effet minimal détectable, pour que la lecture dise quand elle manque de puissance.",
    "Experiment %(name)s": "Expérience %(name)s",
    "All experiments": "Toutes les expériences",
    "Verdict": "Verdict",
    "The analysis's own summary": "Le résumé de l’analyse",
    "Sample ratio check": "Contrôle de la répartition (SRM)",
    "Mismatch: do not read the results until assignment or tracking is fixed.":
        "Déséquilibre : ne lisez pas les résultats avant d’avoir corrigé l’affectation ou le "
        "suivi.",
    "The people were split between the variants as planned.":
        "Les personnes ont été réparties entre les variantes comme prévu.",
    "Variant": "Variante",
    "Planned share": "Part prévue",
    "Observed share": "Part observée",
    "Every metric": "Toutes les métriques",
    "Metric": "Métrique",
    "Control": "Contrôle",
    "Lift and interval": "Hausse et intervalle",
    "Adjusted p-value": "Valeur p ajustée",
    "Chance to beat control": "Chance de battre le contrôle",
    "primary": "principale",
    "Lift of each variant over control, with its interval":
        "Hausse de chaque variante sur le contrôle, avec son intervalle",
    "%(lift)s %(metric)s, between %(low)s and %(high)s":
        "%(lift)s sur %(metric)s, entre %(low)s et %(high)s",
    "likely a real gain": "probablement un vrai gain",
    "likely a real loss": "probablement une vraie perte",
    "it could be no difference at all: the interval includes zero":
        "il se peut qu’il n’y ait aucune différence : l’intervalle contient zéro",
    "%(head)s; %(meaning)s (%(level)s interval).": "%(head)s ; %(meaning)s (intervalle à "
                                                   "%(level)s).",
    "Do not trust this result: the people were not split between the variants as planned "
    "(sample ratio mismatch).":
        "Ne vous fiez pas à ce résultat : les personnes n’ont pas été réparties entre les "
        "variantes comme prévu (déséquilibre d’échantillon, SRM).",
})

FR.update(FR_SETUP)
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
