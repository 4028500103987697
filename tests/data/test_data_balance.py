"""data.balance: Bora's modality balancing inside the resumable, rank-sharded sampler."""
from collections import Counter

import pytest
import torch

from medsora.data.balance import ModalityBalance
from medsora.data.order import ResumableSampler, SeededItems

# 3 modalities of very different sizes: 2, 5 and 13 videos (20 items)
MODS = ["mri"] * 2 + ["cell"] * 5 + ["endo"] * 13
MODS = [MODS[i] for i in torch.randperm(len(MODS), generator=torch.Generator().manual_seed(3)).tolist()]


def _epoch_keys(balance, epoch, world=1):
    keys = []
    for rank in range(world):
        s = ResumableSampler(len(MODS), seed=11, balance=balance)
        s.set_epoch(epoch)
        keys.append(s._balanced_keys(rank, world))
    return keys


def test_modality_policy_draws_every_modality_equally_often():
    bal = ModalityBalance(MODS, "modality", seed=11)
    assert len(bal) == 18 and bal.counts() == {"cell": 6, "endo": 6, "mri": 6}
    for epoch in range(3):
        order = bal.order(epoch)
        assert Counter(MODS[i] for i in order) == {"cell": 6, "endo": 6, "mri": 6}
        # the 2 MRI videos are drawn 3 times each, the 13 endoscopy videos at most once
        per_video = Counter(order)
        assert all(per_video[i] == 3 for i, m in enumerate(MODS) if m == "mri")
        assert max(per_video[i] for i, m in enumerate(MODS) if m == "endo") == 1
    # a different endoscopy subset in another epoch, the same one for the same (seed, epoch)
    endo = lambda e: sorted(i for i in bal.order(e) if MODS[i] == "endo")  # noqa: E731
    assert endo(0) != endo(1) and bal.order(1) == ModalityBalance(MODS, "modality", seed=11).order(1)


def test_smallest_policy_keeps_a_fixed_subset_of_the_smallest_size():
    bal = ModalityBalance(MODS, "smallest", seed=11)
    assert len(bal) == 6 and bal.counts() == {"cell": 2, "endo": 2, "mri": 2}
    e0, e1 = bal.order(0), bal.order(1)
    assert Counter(MODS[i] for i in e0) == {"cell": 2, "endo": 2, "mri": 2}
    assert sorted(e0) == sorted(e1) and len(set(e0)) == 6  # same videos, each once
    assert any(e0 != bal.order(e) for e in range(1, 5))  # reshuffled


def test_none_policy_is_the_plain_permutation():
    bal = ModalityBalance(MODS, "none", seed=11)
    plain = ResumableSampler(len(MODS), seed=11)
    balanced = ResumableSampler(len(MODS), seed=11, balance=bal)
    for s in (plain, balanced):
        s.set_epoch(2)
    assert list(plain) == list(balanced)


def test_unknown_policy_names_the_key():
    with pytest.raises(ValueError, match="data.balance='equal'"):
        ModalityBalance(MODS, "equal", seed=0)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_rank_shards_cover_the_epoch_and_repeats_get_their_own_key(world):
    bal = ModalityBalance(MODS, "modality", seed=11)
    shards = _epoch_keys(bal, epoch=1, world=world)
    assert len({len(s) for s in shards}) == 1
    merged = [k for step in zip(*shards) for k in step]
    assert merged == _epoch_keys(bal, epoch=1)[0][: len(merged)]
    assert len(set(merged)) == len(merged)  # (epoch, index, draw) keys never collide
    assert Counter(MODS[k[1]] for k in _epoch_keys(bal, 1)[0]) == bal.counts()


def test_resume_mid_epoch_continues_exactly():
    bal = ModalityBalance(MODS, "modality", seed=11)
    full = ResumableSampler(len(MODS), seed=11, balance=bal)
    full.set_epoch(3)
    keys = list(full)
    resumed = ResumableSampler(len(MODS), seed=11, balance=ModalityBalance(MODS, "modality", seed=11))
    resumed.set_epoch(3)
    resumed.skip_next(7)
    assert list(resumed) == keys[7:]
    assert len(full) == 18


class _Noise(torch.utils.data.Dataset):
    def __len__(self):
        return len(MODS)

    def __getitem__(self, i):
        return torch.rand(())


def test_repeated_draws_are_different_clips_and_first_draws_keep_their_seed():
    items = SeededItems(_Noise(), seed=5)
    assert items[(0, 3)] == items[(0, 3)]
    assert items[(0, 3)] != items[(0, 3, 1)] != items[(0, 3, 2)]


@pytest.mark.parametrize("policy", ["modality", "smallest"])
def test_training_loader_of_the_demo_set_follows_the_policy(policy):
    """Through the training datamodule on the demo set: one epoch's batches hold the policy's count of each modality."""
    from medsora.config import compose
    from medsora.training.stage import build_datamodule

    cfg = compose(overrides=["data.root=demo", "data.demo_clips=12", "data.size=32", "data.num_frames=5",
                             "data.batch_size=1", "data.num_workers=0", "data.val_fraction=0.0",
                             f"data.balance={policy}"])
    dm = build_datamodule(cfg)
    train = dm.train_dataloader()
    mods = [dm.train_set.table.entries[i].modality for i in dm.train_set.indices]
    sizes = Counter(mods)
    quota = len(mods) // len(sizes) if policy == "modality" else min(sizes.values())
    seen = Counter(m for batch in train for m in batch["modality"])
    assert len(sizes) > 1 and seen == {m: quota for m in sizes}
