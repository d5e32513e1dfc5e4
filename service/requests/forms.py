"""Forms of the public pages. They check and normalise what a data subject types; the services
decide. Limits here bound what one request may carry (and what a reviewer must read)."""

from __future__ import annotations

import re
import unicodedata

from django import forms
from django.conf import settings

from .deadlines import Regulation

MAX_FACTS = 20
MAX_FACT_CHARS = 300
MAX_EVIDENCE_PROMPTS = 10
MAX_EVIDENCE_PROMPT_CHARS = 500
MAX_NAME_CHARS = 200

REGULATION_HELP: dict[str, str] = {
    Regulation.GDPR: "We must answer within one calendar month of receiving your request. "
    "We may extend this once, by two further months, and must tell you why.",
    Regulation.CCPA: "We must answer within 45 days of receiving your request. We may extend this once, by another 45 days, and must tell you why.",
    Regulation.OTHER: "Another law, or none you know of. We aim to answer within one calendar month.",
}

_REFERENCE = re.compile(r"^RTBF-[A-Z0-9]{6}$")


def _lines(text: str) -> list[str]:
    """Non-empty stripped lines, first occurrence kept when a line repeats."""
    seen: dict[str, None] = {}
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            seen.setdefault(line, None)
    return list(seen)


def _bounded_lines(text: str, *, max_count: int, max_chars: int, what: str) -> list[str]:
    lines = _lines(text)
    if len(lines) > max_count:
        raise forms.ValidationError(f"Enter at most {max_count} {what}, one per line; you entered {len(lines)}.", code="too_many")
    too_long = [n for n, line in enumerate(lines, 1) if len(line) > max_chars]
    if too_long:
        numbers = ", ".join(str(n) for n in too_long)
        raise forms.ValidationError(
            f"Each line may have at most {max_chars} characters; line(s) {numbers} are longer. Split them into shorter lines.", code="line_too_long"
        )
    return lines


class RequestForm(forms.Form):
    """The erasure request a data subject files on the public form."""

    name = forms.CharField(
        label="Your full name",
        max_length=MAX_NAME_CHARS,
        help_text="The name the model may know you by.",
        error_messages={"required": "Enter your full name."},
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    email = forms.EmailField(
        label="Your email address",
        max_length=254,
        help_text="We send a six-digit code to this address to confirm it is yours, and tell you the outcome there.",
        error_messages={"required": "Enter your email address.", "invalid": "Enter an email address like name@example.com."},
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    regulation = forms.ChoiceField(
        label="Which law applies to you?",
        choices=Regulation.choices,
        widget=forms.RadioSelect,
        help_text="It sets the deadline by which we must answer.",
        error_messages={"required": "Choose the law that applies to you.", "invalid_choice": "Choose one of the laws listed."},
    )
    facts = forms.CharField(
        label="The personal data the model should forget",
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=MAX_FACTS * (MAX_FACT_CHARS + 2),
        help_text=f"One fact per line, for example \u201cJane Doe lives in Leeds\u201d or \u201cJane Doe's phone number is 0113 496 0000\u201d. "
        f"At most {MAX_FACTS} lines of {MAX_FACT_CHARS} characters.",
        error_messages={"required": "Enter at least one fact about you that the model should forget."},
    )
    evidence_prompts = forms.CharField(
        label="What did you ask the model? (optional)",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=MAX_EVIDENCE_PROMPTS * (MAX_EVIDENCE_PROMPT_CHARS + 2),
        help_text=f"The questions that made the model reveal your data, one per line, for example \u201cWhere does Jane Doe live?\u201d. "
        f"They help us check that the model no longer answers them. At most {MAX_EVIDENCE_PROMPTS} lines of {MAX_EVIDENCE_PROMPT_CHARS} characters.",
    )
    attested = forms.BooleanField(
        label="I confirm that this personal data is about me and that what I have entered is true.",
        error_messages={"required": "Confirm that the data is about you to send the request."},
    )

    def clean_name(self) -> str:
        return " ".join(self.cleaned_data["name"].split())

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip()

    def clean_facts(self) -> list[str]:
        facts = _bounded_lines(self.cleaned_data["facts"], max_count=MAX_FACTS, max_chars=MAX_FACT_CHARS, what="facts")
        if not facts:
            raise forms.ValidationError("Enter at least one fact about you that the model should forget.", code="required")
        return facts

    def clean_evidence_prompts(self) -> list[str]:
        return _bounded_lines(self.cleaned_data["evidence_prompts"], max_count=MAX_EVIDENCE_PROMPTS, max_chars=MAX_EVIDENCE_PROMPT_CHARS, what="questions")

    def regulation_options(self) -> list[tuple[forms.boundfield.BoundWidget, str]]:
        """Each radio button with the deadline its law gives, for the template."""
        return [(option, REGULATION_HELP.get(option.data["value"], "")) for option in self["regulation"]]


class SubjectLookupForm(forms.Form):
    """Reference and email: what identifies a subject's own request."""

    reference = forms.CharField(
        label="Request reference",
        max_length=32,
        help_text="It starts with RTBF-, for example RTBF-7K3M9Q. You find it on the confirmation page and in our emails.",
        error_messages={"required": "Enter your request reference."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}),
    )
    email = forms.EmailField(
        label="Your email address",
        max_length=254,
        help_text="The address you gave with the request.",
        error_messages={"required": "Enter your email address.", "invalid": "Enter an email address like name@example.com."},
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def clean_reference(self) -> str:
        reference = "".join(self.cleaned_data["reference"].split()).upper()
        if re.fullmatch(r"[A-Z0-9]{6}", reference):
            reference = "RTBF-" + reference
        if not _REFERENCE.match(reference):
            raise forms.ValidationError("Enter the reference as shown, for example RTBF-7K3M9Q.", code="invalid")
        return reference

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip()


class VerifyForm(SubjectLookupForm):
    """Reference, email and the emailed code. With resend=True the code is not needed."""

    code = forms.CharField(
        label="Six-digit code",
        max_length=20,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*", "spellcheck": "false"}),
    )

    def __init__(self, *args, resend: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.resend = resend
        minutes = settings.FORGET["CODE_TTL_SECONDS"] // 60
        self.fields["code"].help_text = f"From the email we sent you. A code is valid for {minutes} minutes."

    def clean_code(self) -> str:
        if self.resend:
            return ""
        # NFKC turns full-width digits (typed with some input methods) into ASCII ones.
        code = "".join(unicodedata.normalize("NFKC", self.cleaned_data.get("code", "")).split())
        if not code:
            raise forms.ValidationError("Enter the six-digit code from the email.", code="required")
        if not re.fullmatch(r"[0-9]{6}", code):
            raise forms.ValidationError("The code has six digits, for example 042917.", code="invalid")
        return code
