"""PyTorch twins of fuse3d's Swift models (Sources/Train/Models), module for module and name for name,
so that weights move between the two through safetensors and outputs can be compared.

Part of the fuse3d Python package (`fuse3d.models`, what `fuse3d.load_run` builds); also a script.
Command line (used by Tests/TrainTests and bench/torch/bench_train.py):
  models.py describe --model efficientnet3d --variant b0 --width 0.25 --size 16
  models.py forward  --model ... --weights w.safetensors --input x.safetensors --out y.safetensors
  models.py export   --model ... --seed 1 --weights w.safetensors --input x.safetensors --out y.safetensors
  models.py source-crops --source-crops 3 8 1.5 --sources s.safetensors --input x.safetensors --out y.safetensors
A two-stage model with source crops (--source-crops K P MM) reads the batch's slices from --sources (SourceBatch.load).
"""
import argparse
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

STAGES = [  # expand, channels, repeats, stride, kernel: EfficientNet-B0 (Tan & Le 2019, table 1)
    (1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
    (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3),
]
EFFICIENTNET = {"b0": (1.0, 1.0, 0.2), "b1": (1.0, 1.1, 0.2), "b2": (1.1, 1.2, 0.3), "b3": (1.2, 1.4, 0.3)}
VIT = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12)}


def round_channels(c, width):
    scaled = c * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


class SqueezeExcitation(nn.Module):
    def __init__(self, channels, squeezed):
        super().__init__()
        self.reduce = nn.Conv3d(channels, squeezed, 1)
        self.expand = nn.Conv3d(squeezed, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool3d(x, 1)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class MBConv(nn.Module):
    def __init__(self, inputs, outputs, expand, kernel, stride, drop_path):
        super().__init__()
        mid = inputs * expand
        if expand != 1:
            self.expand_conv = nn.Conv3d(inputs, mid, 1, bias=False)
            self.expand_bn = nn.BatchNorm3d(mid)
        else:
            self.expand_conv = None
            self.expand_bn = None
        self.dw_conv = nn.Conv3d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self.dw_bn = nn.BatchNorm3d(mid)
        self.se = SqueezeExcitation(mid, max(1, inputs // 4))
        self.project_conv = nn.Conv3d(mid, outputs, 1, bias=False)
        self.project_bn = nn.BatchNorm3d(outputs)
        self.residual = stride == 1 and inputs == outputs
        self.drop_path = drop_path

    def forward(self, x):
        y = x
        if self.expand_conv is not None:
            y = F.silu(self.expand_bn(self.expand_conv(y)))
        y = F.silu(self.dw_bn(self.dw_conv(y)))
        y = self.project_bn(self.project_conv(self.se(y)))
        if not self.residual:
            return y
        if self.training and self.drop_path > 0:
            keep = 1 - self.drop_path
            mask = torch.empty((x.shape[0], 1, 1, 1, 1), dtype=y.dtype, device=y.device).bernoulli_(keep)
            y = y * (mask / keep)
        return y + x


class EfficientNet3D(nn.Module):
    def __init__(self, variant="b0", width=None, stochastic_depth=0.2, input_channels=3):
        super().__init__()
        w, d, dropout = EFFICIENTNET[variant]
        w = width if width is not None else w
        stem = round_channels(32, w)
        self.stem_conv = nn.Conv3d(input_channels, stem, 3, 2, 1, bias=False)
        self.stem_bn = nn.BatchNorm3d(stem)
        total = sum(math.ceil(r * d) for _, _, r, _, _ in STAGES)
        blocks, inputs = [], stem
        for expand, channels, repeats, stride, kernel in STAGES:
            outputs = round_channels(channels, w)
            for r in range(math.ceil(repeats * d)):
                p = stochastic_depth * len(blocks) / total
                blocks.append(MBConv(inputs, outputs, expand, kernel, stride if r == 0 else 1, p))
                inputs = outputs
        self.blocks = nn.ModuleList(blocks)
        self.feature_count = round_channels(1280, w)
        self.head_conv = nn.Conv3d(inputs, self.feature_count, 1, bias=False)
        self.head_bn = nn.BatchNorm3d(self.feature_count)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        y = F.silu(self.stem_bn(self.stem_conv(x)))
        for block in self.blocks:
            y = block(y)
        y = F.silu(self.head_bn(self.head_conv(y)))
        return self.dropout(F.adaptive_avg_pool3d(y, 1).flatten(1))


class SelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.heads = heads

    def forward(self, x):
        n, l, d = x.shape
        qkv = self.qkv(x).reshape(n, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(y.transpose(1, 2).reshape(n, l, d))


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, dim * mlp_ratio)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT3D(nn.Module):
    def __init__(self, input_size, patch=16, dim=192, depth=12, heads=3, mlp_ratio=4, input_channels=3):
        super().__init__()
        self.grid = [s // patch for s in input_size]
        self.patch_embed = nn.Conv3d(input_channels, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + math.prod(self.grid), dim) * 0.02)
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.feature_count = dim

    def position_embedding(self, target):
        if list(target) == self.grid:
            return self.pos_embed
        d = self.feature_count
        cls = self.pos_embed[:, :1]
        patches = self.pos_embed[:, 1:].reshape(1, *self.grid, d).permute(0, 4, 1, 2, 3)
        resized = F.interpolate(patches, size=list(target), mode="trilinear", align_corners=False)
        return torch.cat([cls, resized.permute(0, 2, 3, 4, 1).reshape(1, -1, d)], 1)

    def forward(self, x):
        p = self.patch_embed(x)
        tokens = p.flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(p.shape[0], -1, -1).to(tokens.dtype)
        y = torch.cat([cls, tokens], 1) + self.position_embedding(p.shape[2:])
        for block in self.blocks:
            y = block(y)
        return self.norm(y)[:, 0]


class LevelCropBackbone(nn.Module):
    """Twin of Swift's LevelCropBackbone: one crop per level at `atlas` (a buffer, voxel centres (d, h, w)) through
    one shared backbone; features (B, levels * C), level by level."""

    def __init__(self, inner, crop, levels=5):
        super().__init__()
        self.inner, self.crop, self.levels = inner, list(crop), levels
        self.register_buffer("atlas", torch.zeros(levels, 3))
        self.feature_count = levels * inner.feature_count

    def forward(self, x):
        grid, crops = x.shape[2:], []
        for level in range(self.levels):
            s = [min(max(0, math.floor(float(self.atlas[level, a]) + 0.5) - self.crop[a] // 2), grid[a] - self.crop[a])
                 for a in range(3)]
            crops.append(x[:, :, s[0]:s[0] + self.crop[0], s[1]:s[1] + self.crop[1], s[2]:s[2] + self.crop[2]])
        b = x.shape[0]
        return self.inner(torch.cat(crops, 0)).view(self.levels, b, -1).transpose(0, 1).reshape(b, -1)


class LevelHead(nn.Module):
    """Twin of Swift's LevelHead: one linear per condition shared by the levels, a bias per column (condition-major)."""

    def __init__(self, features, levels, conditions):
        super().__init__()
        self.condition = nn.Linear(features, conditions)
        self.bias = nn.Parameter(torch.zeros(conditions * levels))
        self.levels = levels

    def forward(self, x):
        b = x.shape[0]
        return self.condition(x.view(b, self.levels, -1)).transpose(1, 2).reshape(b, -1) + self.bias


class CropKindHead(nn.Module):
    """Twin of Swift's CropKindHead: one linear reads every side or condition crop's features as (canal, foramen,
    recess); a bias per column; columns spinal, left/right foraminal, left/right subarticular. Side crops: a level's
    spinal logit is the mean of its two sides'; condition crops: each column keeps its condition's logit."""

    def __init__(self, features, levels, crops):
        super().__init__()
        self.kind = nn.Linear(features, 3)
        self.bias = nn.Parameter(torch.zeros(5 * levels))
        self.levels, self.crops = levels, crops

    def forward(self, x):
        b = x.shape[0]
        if self.crops == "sides":
            z = self.kind(x.view(b, self.levels, 2, -1))  # (B, level, side, 3)
            spinal = (z[:, :, 0, 0] + z[:, :, 1, 0]) * 0.5
            return torch.cat([spinal, z[:, :, 0, 1], z[:, :, 1, 1], z[:, :, 0, 2], z[:, :, 1, 2]], 1) + self.bias
        columns = 5 * self.levels
        z = self.kind(x.view(b, columns, -1))
        which = torch.tensor([[0, 1, 1, 2, 2][c // self.levels] for c in range(columns)])
        return z.gather(2, which.view(1, columns, 1).expand(b, columns, 1)).squeeze(2) + self.bias


class LogisticCumulativeLink(nn.Module):
    def __init__(self, heads=25, classes=3):
        super().__init__()
        k = classes - 1
        self.cutpoints = nn.Parameter((torch.arange(k).float() - k / 2).repeat(heads, 1))

    def forward(self, z):
        cdf = torch.sigmoid(self.cutpoints.unsqueeze(0) - z.unsqueeze(-1))
        return torch.cat([cdf[..., :1], cdf[..., 1:] - cdf[..., :-1], 1 - cdf[..., -1:]], -1)

    @torch.no_grad()
    def ascend(self, margin=0.0):
        c = self.cutpoints
        for i in range(c.shape[1] - 1):
            c[:, i].clamp_(max=c[:, i + 1] - margin)


class OrdinalClassifier(nn.Module):
    def __init__(self, backbone, heads=25, classes=3):
        super().__init__()
        self.backbone = backbone
        if isinstance(backbone, TwoStageBackbone) and backbone.condition_crops and heads == 25:
            self.head = CropKindHead(backbone.inner.feature_count, backbone.levels, "conditions")
        elif isinstance(backbone, TwoStageBackbone) and backbone.side_shift is not None and heads == 25:
            self.head = CropKindHead(backbone.inner.feature_count, backbone.levels, "sides")
        elif isinstance(backbone, (LevelCropBackbone, TwoStageBackbone)) and heads == 25:
            self.head = LevelHead(backbone.inner.feature_count, backbone.levels, heads // backbone.levels)
        else:
            self.head = nn.Linear(backbone.feature_count, heads)
        self.link = LogisticCumulativeLink(heads, classes)

    def forward(self, x, sources=None):
        """x (B, C, D, H, W) → (B, heads, classes) probabilities; `sources` (a SourceBatch) for a two-stage backbone
        with source crops."""
        features = self.backbone(x, sources) if isinstance(self.backbone, TwoStageBackbone) else self.backbone(x)
        return self.link(self.head(features))


class ConvBlock(nn.Module):
    """Twin of Swift's ConvBlock: convolution without bias, BatchNorm, SiLU."""

    def __init__(self, inputs, outputs, kernel=3, stride=1):
        super().__init__()
        self.conv = nn.Conv3d(inputs, outputs, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm3d(outputs)

    def forward(self, x):
        return F.silu(self.bn(self.conv(x)))


class LevelLocalizer(nn.Module):
    """Twin of Swift's LevelLocalizer: (B, C, D, H, W) coarse grid → (B, levels, D/2, H/2, W/2) heatmap logits;
    `points` turns them into (B, levels, 3) voxel coordinates (d, h, w) of the input by a soft-argmax."""

    def __init__(self, levels=5, width=8, channels=3):
        super().__init__()
        c = width
        self.stem = ConvBlock(channels, c, stride=2)
        self.down1 = ConvBlock(c, 2 * c, stride=2)
        self.down2 = ConvBlock(2 * c, 4 * c, stride=2)
        self.body = ConvBlock(4 * c, 4 * c)
        self.fuse1 = ConvBlock(6 * c, 2 * c, kernel=1)
        self.fuse2 = ConvBlock(3 * c, c, kernel=1)
        self.heat = nn.Conv3d(c, levels, 3, 1, 1)
        self.levels = levels

    def forward(self, x):
        s = self.stem(x)
        d1 = self.down1(s)
        y = self.body(self.down2(d1))
        y = self.fuse1(torch.cat([F.interpolate(y, size=list(d1.shape[2:]), mode="trilinear", align_corners=False), d1], 1))
        y = self.fuse2(torch.cat([F.interpolate(y, size=list(s.shape[2:]), mode="trilinear", align_corners=False), s], 1))
        return self.heat(y)

    @staticmethod
    def soft_argmax(heat, input_size):
        """(B, L, d, h, w) logits → (B, L, 3) expected cell centres in voxels of an input of `input_size`."""
        b, l = heat.shape[:2]
        size = heat.shape[2:]
        p = torch.softmax(heat.flatten(2).float(), -1).view(b, l, *size)
        out = []
        for axis in range(3):
            others = [2 + a for a in range(3) if a != axis]
            marginal = p.sum(others)  # (B, L, n)
            ratio = input_size[axis] / size[axis]
            centres = (torch.arange(size[axis], dtype=torch.float32) + 0.5) * ratio - 0.5
            out.append((marginal * centres).sum(-1))
        return torch.stack(out, -1)


class PointCrops:
    """Twin of Swift's PointCrops: crops resampled (trilinear, zeros outside) around points (B, L, 3) of a grid."""

    def __init__(self, size, scale=1.0):
        self.size, self.scale = list(size), scale

    def __call__(self, x, points, mirrored=False):
        """x (B, C, D, H, W), points (B, L, 3) voxel (d, h, w) → (L * B, C, *size), level-major; `mirrored` crops run
        along −d."""
        b, l = points.shape[:2]
        grid = x.shape[2:]
        axes = [(torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * self.scale for n in self.size]
        if mirrored:
            axes[0] = -axes[0]
        offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)  # (D, H, W, 3) as (d, h, w)
        at = (points.float().reshape(b, l, 1, 1, 1, 3) + offsets).reshape(b, l * self.size[0], *self.size[1:], 3)
        norm = torch.stack([2 * at[..., a] / max(grid[a] - 1, 1) - 1 for a in (2, 1, 0)], -1)  # (x=w, y=h, z=d)
        y = F.grid_sample(x.float(), norm, mode="bilinear", padding_mode="zeros", align_corners=True)  # (B, C, L*D, H, W)
        return y.view(b, x.shape[1], l, *self.size).permute(2, 0, 1, 3, 4, 5).reshape(l * b, x.shape[1], *self.size)


class SourceBatch:
    """A batch's source slices, as Swift's SourceBatch: per channel c (sagittal T1, sagittal T2/STIR, axial T2)
    `pixels[c]` (B, S, R, C), `geometry[c]` (B, S, 12) float32 (the centre of pixel (0, 0), the column step, the row
    step, the unit normal, in each sample's grid voxels (d, h, w); zeros for padding), `valid[c]` (B, S) (1 for a slice,
    0 for padding; a sample's slices first, in their stored order), `voxel_mm` (B) millimetres per grid voxel."""

    def __init__(self, pixels, geometry, valid, voxel_mm):
        self.pixels, self.geometry, self.valid, self.voxel_mm = list(pixels), list(geometry), list(valid), voxel_mm

    @staticmethod
    def load(path):
        """From a safetensors file of tensors `pixels.0`…`pixels.2`, `geometry.0`…, `valid.0`…, `voxel_mm`."""
        from safetensors.torch import load_file

        t = load_file(path)
        return SourceBatch(*[[t[f"{name}.{c}"] for c in range(3)] for name in ("pixels", "geometry", "valid")], t["voxel_mm"])


class SourceCrops:
    """Twin of Swift's SourceCrops (whose doc comment specifies the crops): for points (B, G, 3) read on one series
    channel, crops (G * B, 3, slices, size, size) cut from that channel's source slices, `millimetres` per pixel, the
    other two channels the grid's at the same points; where no slice lies within `reach` mm, the grid's alone on planes
    `fallback_spacing` mm apart. The same tensor operations, in the same order, as the Swift."""

    # (channel, axial, mirrored) of the label columns' five groups (Swift's SourceCrops.columnReadings): the canal, the
    # left and right foramina, the left and right recesses.
    READINGS = [(1, False, False), (0, False, False), (0, False, True), (2, True, False), (2, True, True)]

    # The condition group (0 canal, 1 foramina, 2 recesses) of each of READINGS.
    GROUPS = [0, 1, 1, 2, 2]

    def __init__(self, slices, size, millimetres, reach=8.0, fallback_spacing=4.0, groups=(0, 1, 2)):
        if min(slices, size, millimetres, reach, fallback_spacing) <= 0 or int(slices) % 2 != 1:
            raise ValueError(f"source crops need an odd number of slices and a positive size, millimetres, reach and spacing, "
                             f"not {slices}, {size}, {millimetres}, {reach}, {fallback_spacing}")
        if not set(groups) <= {0, 1, 2}:
            raise ValueError(f"source crop groups are 0 (canal), 1 (foramina), 2 (recesses), not {groups}")
        self.slices, self.size, self.millimetres = int(slices), int(size), float(millimetres)
        self.reach, self.fallback_spacing = float(reach), float(fallback_spacing)
        self.groups = tuple(sorted(set(int(g) for g in groups)))

    @staticmethod
    def axes(axial, mirrored):
        """The crop's depth axis and two in-plane axes, unit vectors in grid voxels (d, h, w)."""
        x = -1.0 if mirrored else 1.0
        return ([0.0, 1.0, 0.0], [x, 0.0, 0.0], [0.0, 0.0, 1.0]) if axial else ([x, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])

    def __call__(self, x, sources, points, reading, use_slices=True):
        """x (B, 3, D, H, W), sources a SourceBatch, points (B, G, 3) grid voxels (d, h, w), reading (channel, axial,
        mirrored) → crops (G * B, 3, slices, size, size) group-major, and (B, G) bool: which came from the slices."""
        b, g, k, p = x.shape[0], points.shape[1], self.slices, self.size
        c, axial, mirrored = reading
        pixels, geometry = sources.pixels[c].float(), sources.geometry[c].float()
        valid = sources.valid[c].float()
        s = geometry.shape[1]
        if min(s, pixels.shape[2], pixels.shape[3]) == 0:
            raise ValueError("source crops need at least one (padding) slice per channel")
        point = points.float()
        voxel_mm = sources.voxel_mm.float().reshape(b, 1, 1)

        def dot(u, v):
            return (u * v).sum(-1)

        depth, first, second = (torch.tensor(v).reshape(1, 1, 1, 3) for v in self.axes(axial, mirrored))

        # The nearest slice of each point (by its distance to the slice's plane), and that distance.
        origin, normal = geometry[..., 0:3], geometry[..., 9:12]
        distance = dot(point.unsqueeze(2) - origin.unsqueeze(1), normal.unsqueeze(1)).abs()  # (B, G, S)
        far = distance + (1 - valid).unsqueeze(1) * 1e9
        nearest_index = (far * -1).argmax(2, keepdim=True)  # (B, G, 1)
        nearest_distance = far.gather(2, nearest_index).squeeze(2)
        from_slices = (nearest_distance * voxel_mm.reshape(b, 1)) <= self.reach
        if not use_slices:  # every crop the grid's
            from_slices = nearest_distance < -1

        # The window: the nearest slice and its neighbours in the stored order, clamped to the sample's own slices (not
        # the batch's padding), so a crop never depends on what else is in the batch.
        count = valid.sum(1).reshape(b, 1, 1)
        steps = torch.arange(k, dtype=torch.float32).reshape(1, 1, k) - (k - 1) / 2
        wanted = nearest_index.float() + steps  # (B, G, k)
        inside = (wanted >= 0).float() * ((wanted - count) < 0).float()
        window = torch.minimum(wanted, count - 1).clamp(min=0)

        def slices_at(index):  # (B, G, k) → the slices' geometry (B, G, k, 12)
            i = index.long().reshape(b, g * k, 1).expand(b, g * k, 12)
            return geometry.gather(1, i).reshape(b, g, k, 12)

        def projections(at):  # (B, G, k, 12) → the point projected onto each slice's plane (B, G, k, 3)
            o, n = at[..., 0:3], at[..., 9:12]
            d = dot(point.unsqueeze(2) - o, n).unsqueeze(3)
            return point.unsqueeze(2) - d * n

        # Ordered along the depth axis: reversed where the window's last slice lies before its first.
        ends = dot(projections(slices_at(window)), depth)  # (B, G, k)
        reversed_ = (ends[..., k - 1:k] - ends[..., 0:1]) < 0
        window = torch.where(reversed_, window.flip(2), window)
        inside = torch.where(reversed_, inside.flip(2), inside)
        chosen = slices_at(window)
        o, column_step, row_step, n = chosen[..., 0:3], chosen[..., 3:6], chosen[..., 6:9], chosen[..., 9:12]
        centre = projections(chosen)

        def in_plane(e):  # an axis projected onto each slice's plane, normalized
            along = e - dot(e, n).unsqueeze(3) * n
            return along / along.norm(dim=3, keepdim=True).clamp(min=1e-6)

        e1, e2 = in_plane(first), in_plane(second)  # (B, G, k, 3)

        # Pixel offsets in voxels.
        offsets = (torch.arange(p, dtype=torch.float32) - (p - 1) / 2).reshape(1, 1, 1, p) * self.millimetres \
            / voxel_mm.reshape(b, 1, 1, 1)
        u, v = offsets.reshape(b, 1, 1, p, 1, 1), offsets.reshape(b, 1, 1, 1, p, 1)
        on_slices = centre.reshape(b, g, k, 1, 1, 3) + u * e1.reshape(b, g, k, 1, 1, 3) + v * e2.reshape(b, g, k, 1, 1, 3)

        # The slices' values: the window's slice index (z) and each point's row and column on its slice.
        relative = on_slices - o.reshape(b, g, k, 1, 1, 3)

        def coordinate(step):
            st = step.reshape(b, g, k, 1, 1, 3)
            return dot(relative, st) / dot(st, st).clamp(min=1e-12)

        column, row = coordinate(column_step), coordinate(row_step)  # (B, G, k, P, P)
        index = window.reshape(b, g, k, 1, 1).expand(b, g, k, p, p)

        def normalised(t, extent):
            return t * (2 / max(extent - 1, 1)) - 1

        sampling = torch.stack([normalised(column, pixels.shape[3]), normalised(row, pixels.shape[2]), normalised(index, s)],
                               5).reshape(b, g * k, p, p, 3)
        values = F.grid_sample(pixels.unsqueeze(1), sampling, mode="bilinear", padding_mode="zeros", align_corners=True) \
            .reshape(b, g, k, p, p) * inside.reshape(b, g, k, 1, 1)

        # Fallback planes along the depth axis, and the grid at whichever points each crop takes.
        planes = steps.reshape(1, 1, k, 1, 1, 1) * self.fallback_spacing / voxel_mm.reshape(b, 1, 1, 1, 1, 1)
        fallback = point.reshape(b, g, 1, 1, 1, 3) + planes * depth.reshape(1, 1, 1, 1, 1, 3) \
            + u * first.reshape(1, 1, 1, 1, 1, 3) + v * second.reshape(1, 1, 1, 1, 1, 3)
        at = torch.where(from_slices.reshape(b, g, 1, 1, 1, 1), on_slices, fallback).reshape(b, g * k, p, p, 3)
        grid = x.shape[2:]
        grid_sampling = torch.cat([normalised(at[..., a:a + 1], grid[a]) for a in (2, 1, 0)], 4)
        fused = F.grid_sample(x.float(), grid_sampling, mode="bilinear", padding_mode="zeros", align_corners=True) \
            .reshape(b, 3, g, k, p, p)
        own = torch.where(from_slices.reshape(b, g, 1, 1, 1), values, fused[:, c])
        crops = torch.stack([own if i == c else fused[:, i] for i in range(3)], 1)  # (B, 3, G, k, P, P)
        return crops.permute(2, 0, 1, 3, 4, 5).reshape(g * b, 3, k, p, p), from_slices


def heatmap_loss(heat, truth, input_size, sigma=1.0):
    """Twin of Swift's HeatmapLoss: cross-entropy of each level's softmax heatmap (B, L, d, h, w) against a normalised
    Gaussian (sigma cells) around the true point (B, L, 3; voxels of an input of `input_size`, NaN where unknown)."""
    b, l = heat.shape[:2]
    cells = heat.shape[2:]
    known = torch.isfinite(truth).all(-1)  # (B, L)
    target = None
    for axis in range(3):
        n = cells[axis]
        c = (truth[..., axis].nan_to_num() + 0.5) * n / input_size[axis] - 0.5
        g = torch.exp(-(torch.arange(n, dtype=torch.float32) - c[..., None]) ** 2 / (2 * sigma * sigma))
        g = g / g.sum(-1, keepdim=True).clamp_min(1e-30)
        shape = [b, l, 1, 1, 1]
        shape[2 + axis] = n
        g = g.view(*shape)
        target = g if target is None else target * g
    logp = torch.log_softmax(heat.flatten(2).float(), -1).view(b, l, *cells)
    ce = -(target * logp).flatten(2).sum(-1)
    return (ce * known).sum() / known.sum().clamp_min(1)


class TwoStageBackbone(nn.Module):
    """Twin of Swift's TwoStageBackbone: the localizer on the grid average-pooled by `pool`; one crop per level at its
    points (or at `guide` when set: training on the labels) through one shared backbone; features (B, levels * C).
    With `condition_points` the localizer predicts every label column's point (25 heatmaps) rather than the levels'
    canal points plus the `offsets` buffer; `located` is always (B, 25, 3), every label column's point.
    With `source_crops` (a SourceCrops; needs `condition_crops`) the condition crops are cut from each condition's own
    series' source slices (`forward`'s `sources`, a SourceBatch) instead of the grid; `from_slices` (B, 25) bool then
    says which columns' crops came from the slices."""

    def __init__(self, inner, crop, scale=1.0, localizer_width=8, pool=(4, 2, 2), levels=5, side_shift=None,
                 condition_crops=False, condition_points=False, source_crops=None):
        super().__init__()
        if source_crops is not None and not condition_crops:
            raise ValueError("source crops are cut per label column: they need condition crops")
        self.side_shift, self.condition_crops, self.condition_points = side_shift, condition_crops, condition_points
        self.source_crops, self.from_slices = source_crops, None
        self.localizer = LevelLocalizer(levels * (5 if condition_points else 1), localizer_width)
        self.inner = inner
        self.crops, self.pool, self.levels = PointCrops(crop, scale), tuple(pool), levels
        self.feature_count = levels * (5 if condition_crops else 1 if side_shift is None else 2) * inner.feature_count
        self.guide, self.located, self.heat = None, None, None
        self.register_buffer("offsets", torch.zeros(5 * levels, 3))

    def locate(self, x):
        return self.locate_with_heatmaps(x)[1]

    def locate_with_heatmaps(self, x):
        coarse = F.avg_pool3d(x, self.pool) if max(self.pool) > 1 else x
        heat = self.localizer(coarse)
        return heat, LevelLocalizer.soft_argmax(heat, list(x.shape[2:]))

    def columns(self, points):
        """The localizer's points (B, levels or 25, 3) → every label column's (B, 25, 3)."""
        if self.condition_points:
            return points
        b = points.shape[0]
        return points.unsqueeze(1).expand(b, 5, self.levels, 3).reshape(b, 5 * self.levels, 3) + self.offsets

    def forward(self, x, sources=None):
        b = x.shape[0]
        self.heat, predicted = self.locate_with_heatmaps(x)
        self.located = self.columns(predicted)
        points = predicted.detach()
        if self.guide is not None:  # NaN where the prediction is used
            points = torch.where(torch.isfinite(self.guide), self.guide.nan_to_num(), points)
        if self.condition_crops:
            columns = self.columns(points)
            plain, mirrored = list(range(10)) + list(range(15, 20)), list(range(10, 15)) + list(range(20, 25))
            order = plain + mirrored
            back = [order.index(c) for c in range(5 * self.levels)]  # crop order → label-column order
            if self.source_crops is not None:
                if sources is None:
                    raise ValueError("this model cuts its crops from the source slices: forward needs the sources")
                # Canal, left foramina, left recesses, then the mirrored right foramina and recesses: the crop order.
                cuts = [self.source_crops(x, sources, columns[:, 5 * group:5 * group + 5], SourceCrops.READINGS[group],
                                          use_slices=SourceCrops.GROUPS[group] in self.source_crops.groups)
                        for group in (0, 1, 3, 2, 4)]
                crops = torch.cat([crop for crop, _ in cuts])
                self.from_slices = torch.cat([taken for _, taken in cuts], 1)[:, back]
            else:
                crops = torch.cat([self.crops(x, columns[:, plain]), self.crops(x, columns[:, mirrored], mirrored=True)])
            f = self.inner(crops).view(5 * self.levels, b, -1).transpose(0, 1)  # (B, crop order, F)
            return f[:, back].reshape(b, -1)
        points = points[:, :self.levels]
        if self.side_shift is None:
            return self.inner(self.crops(x, points)).view(self.levels, b, -1).transpose(0, 1).reshape(b, -1)
        along = torch.tensor([self.side_shift, 0.0, 0.0])
        crops = torch.cat([self.crops(x, points + along), self.crops(x, points - along, mirrored=True)])
        return self.inner(crops).view(2, self.levels, b, -1).permute(2, 1, 0, 3).reshape(b, -1)


def cumulative_link_loss(probs, labels, weights=(1.0, 2.0, 4.0), eps=1e-7):
    present = (labels >= 0).float()
    safe = labels.clamp(min=0)
    likelihood = probs.float().gather(2, safe.unsqueeze(-1)).squeeze(-1).clamp(min=eps)
    w = torch.tensor(weights, device=probs.device)[safe] * present
    return -(w * likelihood.log()).sum() / w.sum().clamp(min=eps)


@torch.no_grad()
def calibrate_norms(net, part, floor, *inputs):
    """Sets the running statistics of every BatchNorm3d in `part` (a module of `net`) to its batch statistics over one
    pass of `net(*inputs)` (the running variance, unbiased as BatchNorm keeps it, plus `floor`); `net` is left in eval
    mode."""
    norms = [m for m in part.modules() if isinstance(m, nn.BatchNorm3d)]
    net.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, its statistics
        m.train()
    net(*inputs)
    for m in norms:
        m.running_var.add_(floor)
        m.momentum = 0.1
    net.eval()


def make(model, variant=None, size=16, width=None, heads=25, classes=3, level_crop=None, two_stage=None):
    """The twin of Swift's ModelSpec(name:variant:inputSize:width:heads:classes:levelCrop:twoStage:).make();
    `two_stage` is (crop, scale, localizer width, pool[, side shift[, condition crops[, condition points[, source
    crops]]]]), source crops a SourceCrops or None."""
    if model == "efficientnet3d":
        backbone = EfficientNet3D(variant or "b0", width)
        if level_crop:
            backbone = LevelCropBackbone(backbone, level_crop)
        elif two_stage:
            crop, scale, localizer_width, pool = two_stage[:4]
            side_shift = two_stage[4] if len(two_stage) > 4 else None
            condition_crops = two_stage[5] if len(two_stage) > 5 else False
            condition_points = two_stage[6] if len(two_stage) > 6 else False
            source_crops = two_stage[7] if len(two_stage) > 7 else None
            backbone = TwoStageBackbone(backbone, crop, scale, localizer_width, pool, side_shift=side_shift,
                                        condition_crops=condition_crops, condition_points=condition_points,
                                        source_crops=source_crops)
    elif model == "vit3d":
        dim, depth, h = VIT[variant or "tiny"]
        backbone = ViT3D([size] * 3, dim=dim, depth=depth, heads=h)
    else:
        raise SystemExit(f"unknown model {model}")
    return OrdinalClassifier(backbone, heads, classes)


def main():
    from safetensors.torch import load_file, save_file

    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["describe", "forward", "export", "source-crops"],
                    help="source-crops: SourceCrops alone, --input's x (B, 3, D, H, W) and points (5, B, G, 3), the"
                         " points of reading r (SourceCrops.READINGS) at points[r] → crops.r (G * B, 3, K, P, P) and"
                         " from_slices.r (B, G)")
    ap.add_argument("--model", help="required but for source-crops")
    ap.add_argument("--variant")
    ap.add_argument("--width", type=float)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--heads", type=int, default=25)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--level-crop", type=int, nargs=3, help="D H W: one crop per level (LevelCropBackbone)")
    ap.add_argument("--two-stage", type=int, nargs=3, help="D H W: the crop of the two-stage model (TwoStageBackbone)")
    ap.add_argument("--crop-scale", type=float, default=1.0)
    ap.add_argument("--pool", type=int, nargs=3, default=[4, 2, 2])
    ap.add_argument("--localizer-width", type=int, default=8)
    ap.add_argument("--side-shift", type=float, help="side crops (two per level, the right one mirrored) this far from the point")
    ap.add_argument("--condition-crops", action="store_true", help="one crop per label column at its condition's point")
    ap.add_argument("--condition-points", action="store_true", help="the localizer predicts every label column's point")
    ap.add_argument("--source-crops", type=float, nargs=3, metavar=("K", "P", "MM"),
                    help="condition crops cut from the source slices: K slices of P x P pixels of MM millimetres")
    ap.add_argument("--source-reach", type=float, default=8.0, help="source crops: how near (mm) the nearest slice must lie")
    ap.add_argument("--source-groups", type=int, nargs="+", default=[0, 1, 2],
                    help="source crops: the condition groups read from the slices (0 canal, 1 foramina, 2 recesses)")
    ap.add_argument("--source-spacing", type=float, default=4.0, help="source crops: a fallback crop's plane spacing (mm)")
    ap.add_argument("--calibrate-norms", type=float, metavar="FLOOR",
                    help="export: the crop network's BatchNorm running statistics are its batch statistics over the"
                         " exported input (the variance plus FLOOR) instead of random ones, which leave a tiny untrained"
                         " two-stage model's probabilities blind to its crops")
    ap.add_argument("--sources", help="the batch's source slices (safetensors, SourceBatch.load) for source crops")
    ap.add_argument("--weights")
    ap.add_argument("--input")
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    source_crops = None
    if a.source_crops:
        k, p, mm = a.source_crops
        if k != int(k) or p != int(p):
            ap.error(f"--source-crops takes whole slices and pixels, not {k} and {p}")
        source_crops = SourceCrops(int(k), int(p), mm, a.source_reach, a.source_spacing, a.source_groups)
    sources = SourceBatch.load(a.sources) if a.sources else None
    if a.command == "source-crops":
        if source_crops is None or sources is None or not a.input or not a.out:
            ap.error("source-crops needs --source-crops, --sources, --input and --out")
        inputs = load_file(a.input)
        out = {}
        with torch.no_grad():
            for r, reading in enumerate(SourceCrops.READINGS):
                crops, taken = source_crops(inputs["x"], sources, inputs["points"][r], reading)
                out[f"crops.{r}"], out[f"from_slices.{r}"] = crops.contiguous(), taken.contiguous()
        save_file(out, a.out)
        return
    if not a.model:
        ap.error(f"{a.command} needs --model")
    if source_crops is not None and (not a.two_stage or not a.condition_crops):
        ap.error("--source-crops needs --two-stage and --condition-crops")
    if source_crops is not None and a.command != "describe" and sources is None:
        ap.error(f"{a.command} with --source-crops needs --sources")
    two_stage = ((a.two_stage, a.crop_scale, a.localizer_width, a.pool, a.side_shift, a.condition_crops, a.condition_points,
                  source_crops) if a.two_stage else None)
    net = make(a.model, a.variant, a.size, a.width, a.heads, level_crop=a.level_crop, two_stage=two_stage)
    if a.command == "describe":
        params = sum(p.numel() for p in net.parameters())
        shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
        print(json.dumps({"parameters": params, "state": shapes}, sort_keys=True))
        return
    if a.command == "export":
        for m in net.modules():  # non-trivial running statistics, so eval mode is really tested
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        if isinstance(net.backbone, TwoStageBackbone):  # peaked heatmaps: the points spread, the crops differ
            with torch.no_grad():
                net.backbone.localizer.heat.weight.mul_(40)
        if isinstance(net.backbone, LevelCropBackbone):  # five distinct crop positions inside the grid
            with torch.no_grad():
                for level in range(5):
                    net.backbone.atlas[level] = torch.tensor([a.size / 2 + level - 2.3, a.size * (level + 1) / 6, a.size / 2 - 0.6])
        x = torch.randn(a.batch, 3, a.size, a.size, a.size)
        if sources is not None and sources.voxel_mm.shape[0] != a.batch:
            ap.error(f"--sources holds {sources.voxel_mm.shape[0]} samples, not --batch {a.batch}")
        if a.calibrate_norms is not None:
            if not isinstance(net.backbone, TwoStageBackbone):
                ap.error("--calibrate-norms calibrates a two-stage model's crop network")
            calibrate_norms(net, net.backbone.inner, a.calibrate_norms, x, sources)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, a.weights)
        save_file({"x": x}, a.input)
    else:
        state = {k: v for k, v in load_file(a.weights).items() if "/" not in k}
        net.load_state_dict(state, strict=True)
        x = load_file(a.input)["x"]
    net.eval()
    with torch.no_grad():
        out = {"probs": net(x, sources).contiguous()}
        if a.two_stage:
            out["points"] = net.backbone.located.contiguous()
        if source_crops is not None:
            out["from_slices"] = net.backbone.from_slices.contiguous()
        save_file(out, a.out)


if __name__ == "__main__":
    main()
