"""French of the experiment set-up form and of the segment builder's read-only view (kept
beside :mod:`passerelle.web.i18n`, which adds it to its catalogue)."""

from __future__ import annotations

FR_SETUP: dict[str, str] = {
    "The set-up form below carries this sample size and minimum detectable effect, so the "
    "read-out says when the test is underpowered.":
        "Le formulaire ci-dessous reprend cette taille d’échantillon et cet effet minimal "
        "détectable, pour que la lecture dise quand le test manque de puissance.",
    "Write the experiment into the project": "Écrire l’expérience dans le projet",
    "Saving writes experiments/NAME.yml, the file IT reviews in git (see "
    "docs/measurement.md).":
        "Enregistrer écrit experiments/NOM.yml, le fichier que l’IT relit dans git (voir "
        "docs/measurement.md).",
    "Setting up an experiment needs the experiments:write permission.":
        "Préparer une expérience demande la permission experiments:write.",
    "The file would not be valid:": "Le fichier ne serait pas valide :",
    "What changes for people in the variants":
        "Ce qui change pour les personnes des variantes",
    "Hypothesis: what you expect, and why": "Hypothèse : ce que vous attendez, et pourquoi",
    "Audience (segment)": "Audience (segment)",
    "everyone exposed": "toutes les personnes exposées",
    "Variant %(n)s: name": "Variante %(n)s : nom",
    "control": "contrôle",
    "share (%)": "part (%)",
    "Primary metric: name": "Métrique principale : nom",
    "Primary metric: what is counted": "Métrique principale : ce qui est compté",
    "conversion": "conversion",
    "revenue": "chiffre d’affaires",
    "orders": "commandes",
    "Days after the first exposure that count":
        "Jours comptés après la première exposition",
    "Minimum detectable effect (% of the metric)":
        "Effet minimal détectable (% de la métrique)",
    "Sample size: people in all variants together":
        "Taille d’échantillon : personnes de toutes les variantes",
    "Start date": "Date de début",
    "Save the experiment": "Enregistrer l’expérience",
    "The plan": "Le plan",
    "Hypothesis": "Hypothèse",
    "Variants": "Variantes",
    "Minimum detectable effect": "Effet minimal détectable",
    "Planned sample size": "Taille d’échantillon prévue",
    "An experiment needs at least two variants, the first one is the control.":
        "Une expérience demande au moins deux variantes ; la première est le contrôle.",
    "The experiment “%(name)s” is defined in %(file)s: edit it there, or choose another "
    "name.":
        "L’expérience « %(name)s » est définie dans %(file)s : modifiez-la là, ou choisissez "
        "un autre nom.",
    "The file experiments/%(name)s.yml exists already: tick “Replace the existing file” to "
    "replace it.":
        "Le fichier experiments/%(name)s.yml existe déjà : cochez « Remplacer le fichier "
        "existant » pour le remplacer.",
    "The start date “%(text)s” is not a date (YYYY-MM-DD).":
        "La date de début « %(text)s » n’est pas une date (AAAA-MM-JJ).",
    # the segment builder's read-only view
    "Segment %(name)s": "Segment %(name)s",
    "All segments": "Tous les segments",
    "owner": "responsable",
    "Read-only here.": "En lecture seule ici.",
    "Its conditions nest groups deeper than the builder’s two levels (a group inside a group "
    "inside the segment): a form would lose them, so the builder shows the file instead of "
    "changing it.":
        "Ses conditions imbriquent des groupes plus profondément que les deux niveaux du "
        "constructeur (un groupe dans un groupe dans le segment) : un formulaire les "
        "perdrait, le constructeur montre donc le fichier au lieu de le modifier.",
    "Edit %(file)s in git": "Modifier %(file)s dans git",
    "Edit %(file)s in the project's git repository; IT reviews the change there.":
        "Modifiez %(file)s dans le dépôt git du projet ; l’IT y relit la modification.",
    "Its file, as IT reviews it": "Son fichier, tel que l’IT le relit",
}
