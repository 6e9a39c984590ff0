"""Desired state, in layers: the protocol (:mod:`.base`), generic resources (:mod:`.files`,
:mod:`.system`, :mod:`.keys`) and the mail stack's own (:mod:`.postfix`, :mod:`.dovecot`).

The engine imports only :mod:`.base`; a new kind of resource is a new class here, nothing more.
"""

from mailkit.core.resources.acme import AcmeCertificate
from mailkit.core.resources.base import Change, Resource, Script, SharedStage, unified_diff
from mailkit.core.resources.dovecot import PasswdFile, PasswdUser, SieveScript
from mailkit.core.resources.files import CANDIDATE, Directory, File
from mailkit.core.resources.keys import GeneratedKey, GeneratedSecret
from mailkit.core.resources.postfix import LookupTable, MasterService, Postconf
from mailkit.core.resources.system import Packages, SystemAccount

__all__ = [
    "CANDIDATE",
    "AcmeCertificate",
    "Change",
    "Directory",
    "File",
    "GeneratedKey",
    "GeneratedSecret",
    "LookupTable",
    "MasterService",
    "Packages",
    "PasswdFile",
    "PasswdUser",
    "Postconf",
    "Resource",
    "Script",
    "SharedStage",
    "SieveScript",
    "SystemAccount",
    "unified_diff",
]
