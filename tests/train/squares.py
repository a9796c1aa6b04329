"""A tiny synthetic stand-in for the scene datasets and judges: colored squares.

``SquaresDataset`` has the interface of ``conceptebm.datasets.make_dataset`` (``concepts``,
``batch(indices)``, ``__getitem__``) and ``SquaresJudge`` the interface of a judge
(``concepts``, ``predict``), reading position by the centre of mass of the square and color by
the dominant channel, so the training machinery is tested without the real renderer.
"""

import torch

from conceptebm.concepts import Concept

COLORS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]])  # (3, 3)
BACKGROUND = 0.5


class SquaresDataset(torch.utils.data.Dataset):
    concepts = {"position": Concept.continuous("position", dim=2),
                "color": Concept.categorical("color", ["red", "green", "blue"])}

    def __init__(self, size=256, seed=0, image_size=16, half=2):
        g = torch.Generator().manual_seed(seed)
        self.size, self.image_size, self.half = size, image_size, half
        self.position = torch.rand(size, 2, generator=g) * 1.6 - 0.8  # (N, 2) in [-0.8, 0.8]
        self.color = torch.randint(0, 3, (size,), generator=g)  # (N,)

    def __len__(self):
        return self.size

    def batch(self, indices):
        idx = torch.as_tensor(indices).long()
        s = self.image_size
        pos, col = self.position[idx], self.color[idx]
        # pixel centres inside the square around (x, y); y grows downward, as image rows
        cx = (pos[:, 0] + 1) / 2 * (s - 1)
        cy = (pos[:, 1] + 1) / 2 * (s - 1)
        cols = torch.arange(s)[None].float()
        inx = ((cols - cx[:, None]).abs() <= self.half)  # (n, s)
        iny = ((cols - cy[:, None]).abs() <= self.half)  # (n, s)
        mask = (iny[:, :, None] & inx[:, None, :]).float()[:, None]  # (n, 1, s, s)
        img = BACKGROUND * (1 - mask) + mask * COLORS[col][:, :, None, None]
        return img, {"position": pos, "color": col}

    def __getitem__(self, i):
        x, lb = self.batch([i])
        return x[0], {k: v[0] for k, v in lb.items()}


class SquaresJudge:
    concepts = SquaresDataset.concepts

    def predict(self, images):
        s = images.shape[-1]
        w = (images - BACKGROUND).abs().sum(1)  # (n, s, s)
        w = w / w.sum((1, 2), keepdim=True).clamp_min(1e-8)
        coords = torch.arange(s).float() / (s - 1) * 2 - 1
        x = (w.sum(1) * coords).sum(1)
        y = (w.sum(2) * coords).sum(1)
        color = ((images - BACKGROUND) * w[:, None]).sum((2, 3)).argmax(1)
        return {"position": torch.stack([x, y], 1), "color": color}
