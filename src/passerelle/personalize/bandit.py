"""Learned ranking: a Thompson-sampling bandit over a placement's eligible offers.

Each offer of a learned placement has, in each *cell* (everyone, a segment of
``learn_per``, or a value of the context value it names), a Beta posterior of its reward
rate: ``Beta(1 + rewards, 1 + impressions - rewards)`` from the logged events (see
:mod:`passerelle.personalize.log`). A decision draws one rate per eligible offer from these
posteriors and ranks the offers by the draw: an offer that might be the best is shown in
proportion to the chance that it is, so the placement keeps exploring while it learns.

Every message says with which probability it was chosen: the share, among ``DRAWS + 1``
posterior draws, of those where it ranks first among the offers still open at its rank
(the draw that ranked is one of them, so a chosen message never has probability 0). The
draws come from a generator seeded by the decision id: the same decision id and posteriors
give the same ranking and probabilities, in any process. Those probabilities are what make
the off-policy read-out possible (:mod:`passerelle.personalize.offpolicy`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from passerelle.project.offers_models import LearnPerContext, OfferConfig, PlacementConfig

DRAWS = 1000  # Monte Carlo draws behind a probability: its standard error is at most 1.6 %
EVERYONE, OTHERS = "all", "other"  # the cell without learn_per; people in none of its segments
CELL_PREFIX = "cell__"  # column of decision_people holding a person's segment cell


def seed_of(decision_id: str) -> int:
    """A seed from the decision id, the same in every process (no per-process hash salt)."""
    return int.from_bytes(hashlib.sha256(decision_id.encode()).digest()[:8], "big")


def beta_parameters(trials: np.ndarray, rewards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior Beta(alpha, beta) after a uniform prior."""
    trials, rewards = np.asarray(trials, float), np.asarray(rewards, float)
    return 1.0 + rewards, 1.0 + np.maximum(trials - rewards, 0.0)


@dataclass
class Draws:
    """Posterior draws for some arms: row 0 ranks, every row counts in probabilities."""

    theta: np.ndarray  # (draws + 1, arms)

    def order(self) -> list[int]:
        return [int(i) for i in np.argsort(-self.theta[0], kind="stable")]

    def probability(self, arm: int, among: Sequence[int]) -> float:
        """P(``arm`` has the highest rate among the arms ``among``)."""
        among = list(among)
        winners = np.asarray(among)[self.theta[:, among].argmax(axis=1)]
        return float(np.mean(winners == arm))

    def first_probabilities(self) -> np.ndarray:
        """P(each arm ranks first among all)."""
        arms = self.theta.shape[1]
        return np.bincount(self.theta.argmax(axis=1), minlength=arms) / self.theta.shape[0]


def draw(alpha: np.ndarray, beta: np.ndarray, seed: int, draws: int = DRAWS) -> Draws:
    rng = np.random.default_rng(seed)
    return Draws(rng.beta(alpha, beta, size=(draws + 1, len(alpha))))


def thompson_probabilities(alpha: np.ndarray, beta: np.ndarray, seed: int = 0,
                           draws: int = DRAWS) -> np.ndarray:
    """P(each arm ranks first) under Thompson sampling, by Monte Carlo."""
    return draw(np.asarray(alpha, float), np.asarray(beta, float), seed, draws)\
        .first_probabilities()


def cell_of(place: PlacementConfig, person_values: Mapping[str, Any],
            context: Mapping[str, Any]) -> str:
    """The cell a decision learns in: the person's segment of ``learn_per`` (computed by the
    store refresh), the value of its context value, or everyone."""
    per = place.learn_per
    if per is None:
        return EVERYONE
    if isinstance(per, LearnPerContext):
        value = context.get(per.context)
        return OTHERS if value is None else str(value)
    return str(person_values.get(f"{CELL_PREFIX}{place.name}") or OTHERS)


Posteriors = Mapping[tuple[str, str, str], tuple[int, int]]  # (placement, cell, offer) ->
# (impressions, rewards)


@dataclass
class Ranking:
    """The offers of one decision in the order the draw ranked them."""

    offers: list[OfferConfig]
    draws: Draws
    means: np.ndarray  # posterior means, in the order of ``offers``
    cell: str

    def probability(self, offer: OfferConfig, open_offers: Sequence[OfferConfig]) -> float:
        index = {o.name: i for i, o in enumerate(self.offers)}
        return self.draws.probability(index[offer.name], [index[o.name] for o in open_offers])

    def explored(self, offer: OfferConfig) -> bool:
        """The offer shown first was not the one with the best posterior mean."""
        best = self.offers[int(np.argmax(self.means))] if self.offers else None
        return best is not None and best.name != offer.name

    def ordered(self) -> list[OfferConfig]:
        return [self.offers[i] for i in self.draws.order()]


def rank(place: PlacementConfig, offers: list[OfferConfig], posteriors: Posteriors,
         cell: str, decision_id: str, draws: int = DRAWS) -> Ranking:
    """Thompson ranking of ``offers`` (eligible, best priority first) for one decision."""
    stats = np.array([posteriors.get((place.name, cell, o.name), (0, 0)) for o in offers],
                     dtype=float).reshape(len(offers), 2)
    alpha, beta = beta_parameters(stats[:, 0], stats[:, 1])
    return Ranking(offers, draw(alpha, beta, seed_of(decision_id), draws),
                   alpha / (alpha + beta), cell)


__all__ = ["CELL_PREFIX", "DRAWS", "EVERYONE", "OTHERS", "Draws", "Ranking", "beta_parameters",
           "cell_of", "draw", "rank", "seed_of", "thompson_probabilities"]
