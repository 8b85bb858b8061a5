"""The words of the sharing report (article 36), in Chinese (the default: the report is filed
with the city's data-sharing office) and in English (``--lang en``).

Each label is looked up by its English text, so the report's code reads as it prints in English
and a missing translation shows up as English, never as nothing.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Language", "label"]

Language = Literal["zh", "en"]

_ZH: dict[str, str] = {
    # the page's head
    "quarterly sharing report (article 36)": "政务信息资源共享季度报告（第三十六条）",
    "annual sharing report (article 36)": "政务信息资源共享年度报告（第三十六条）",
    "provider": "提供部门",
    "period": "统计期间",
    "China time": "北京时间",
    "audit chain": "审计链",
    "OK, {n} records verified": "完整，已核验 {n} 条记录",
    "BROKEN at record seq {seq}: {reason}. The figures below come from a log that was altered.": (
        "在第 {seq} 条记录处断裂：{reason}。以下数字来自被改动过的日志。"
    ),
    # sections
    "comparisons answered": "已答复的比对",
    "comparisons refused, failed or abandoned": "被拒绝、失败或放弃的比对",
    "conditional sharing (article 25)": "有条件共享（第二十五条）",
    "comparisons per grant": "各授权下的比对",
    "discrepancy reports (article 26)": "比对结果异议（第二十六条）",
    "department certificates": "部门证书",
    "other audited actions": "其他已审计操作",
    "none": "无",
    # columns
    "requester": "使用部门",
    "resource": "资源",
    "mode": "方式",
    "requests": "请求数",
    "items": "条目数",
    "matches": "匹配数",
    "grant": "授权",
    "answered": "已答复",
    "refused": "被拒绝",
    "(unauthenticated)": "（未通过身份认证）",
    "failed": "失败",
    "abandoned": "已放弃",
    # figures
    "applications submitted": "提交的申请",
    "applications approved": "批准的申请",
    "applications refused": "不予批准的申请",
    "applications decided": "已决定的申请",
    "  within 5 working days (on time)": "  其中 5 个工作日内（按时）",
    "{share} of those decided": "占已决定的 {share}",
    "{share} of those answered": "占已答复的 {share}",
    "applications pending": "待决定的申请",
    "at {moment}": "截至 {moment}",
    "  past their deadline (overdue)": "  其中已逾期",
    "grants revoked": "撤销的授权",
    "reports of doubted results filed": "提出的异议",
    "reports answered": "已答复的异议",
    "reports pending": "待答复的异议",
    "certificates signed": "签发的证书",
    "certificates revoked": "吊销的证书",
}


def label(text: str, lang: Language, **values: object) -> str:
    """``text`` in ``lang``, with ``values`` put in its ``{name}`` places."""
    chosen = _ZH.get(text, text) if lang == "zh" else text
    return chosen.format(**values) if values else chosen
