"""The ranking page of the web load bench in oTree: four images, four criteria, a rank 1-4 for every image under
every criterion (16 integer fields stored on the Player), each criterion's ranks a permutation; 20 pages (rounds) per
participant, as the project's bench design."""

from otree.api import BaseConstants, BaseGroup, BasePlayer, BaseSubsession, Page, models

doc = __doc__

CRITERIA = [
    ("description", "How well does each image match the description?", "Best match", "Worst match"),
    ("cultural_relevance", "How well does each image represent the culture?", "Most representative", "Least"),
    ("stereotypes", "From your own knowledge of the culture, how stereotypical is each image?", "Least", "Most"),
    ("offensiveness", "How offensive do you personally find each image?", "Least offensive", "Most offensive"),
]
IMAGES = 4


class C(BaseConstants):
    NAME_IN_URL = "ranking"
    PLAYERS_PER_GROUP = None
    NUM_ROUNDS = 20


class Subsession(BaseSubsession):
    pass


class Group(BaseGroup):
    pass


def rank_field(i):
    return models.IntegerField(choices=list(range(1, IMAGES + 1)), label=f"Rank for image {i}")


class Player(BasePlayer):
    description_1 = rank_field(1)
    description_2 = rank_field(2)
    description_3 = rank_field(3)
    description_4 = rank_field(4)
    cultural_relevance_1 = rank_field(1)
    cultural_relevance_2 = rank_field(2)
    cultural_relevance_3 = rank_field(3)
    cultural_relevance_4 = rank_field(4)
    stereotypes_1 = rank_field(1)
    stereotypes_2 = rank_field(2)
    stereotypes_3 = rank_field(3)
    stereotypes_4 = rank_field(4)
    offensiveness_1 = rank_field(1)
    offensiveness_2 = rank_field(2)
    offensiveness_3 = rank_field(3)
    offensiveness_4 = rank_field(4)


class Ranking(Page):
    form_model = "player"
    form_fields = [f"{c}_{i}" for c, *_ in CRITERIA for i in range(1, IMAGES + 1)]

    @staticmethod
    def vars_for_template(player):
        order = [(player.id_in_group + player.round_number + k) % IMAGES + 1 for k in range(IMAGES)]
        return dict(
            prompt="A table of food",
            criteria=[
                dict(
                    question=question,
                    scale=f"1 = {best} · {IMAGES} = {worst}",
                    images=[
                        dict(field=f"{cid}_{i}", src=f"ranking/img{order[i - 1]}.png", n=i)
                        for i in range(1, IMAGES + 1)
                    ],
                )
                for cid, question, best, worst in CRITERIA
            ],
        )

    @staticmethod
    def error_message(player, values):
        for cid, *_ in CRITERIA:
            ranks = {values[f"{cid}_{i}"] for i in range(1, IMAGES + 1)}
            if ranks != set(range(1, IMAGES + 1)):
                return "Please give each image a different rank under every question."


page_sequence = [Ranking]
