"""The admin panel's texts in the installation's language (config "language", or the user's choice).

The message ids are the English texts, so English needs no table; CATALOGUE[language][msgid] is
the translation, with the same {named} placeholders. Templates call `_("...")`, the panel's code
`tr(request, "...")`, `translate(language, "...")` or marks a msgid for later with `N_("...")`;
tests/images/test_admin_i18n.py checks that every such msgid has its Russian text. Messages of
the API (its "detail") are shown as the API wrote them. Standard library only (the test reads it).
"""

# The Russian texts are Cyrillic on purpose (RUF001 takes some letters for Latin look-alikes).
# ruff: noqa: RUF001

from __future__ import annotations

# Each language's name in itself: the header's switch offers the others.
LANGUAGES = {"en": "English", "ru": "Русский"}

# The decimal separator where it is not ".".
DECIMAL_SEPARATORS = {"ru": ","}

CATALOGUE: dict[str, dict[str, str]] = {
    "ru": {
        # --- every page: header, navigation, common words
        "PSN administration": "Администрирование PSN",
        "Users": "Пользователи",
        "Groups": "Группы",
        "Domains": "Домены",
        "Tenants": "Тенанты",
        "global administrator": "глобальный администратор",
        "administrator of {tenant}": "администратор тенанта {tenant}",
        "Sign out": "Выйти",
        "Error": "Ошибка",
        "Back to the start page": "На начальную страницу",
        "No such language.": "Такого языка нет.",
        "Save": "Сохранить",
        "Cancel": "Отмена",
        "Back": "Назад",
        "Delete": "Удалить",
        "Delete…": "Удалить…",
        "Search": "Найти",
        "Show": "Показать",
        "Address": "Адрес",
        "Address or name": "Адрес или имя",
        "Name": "Имя",
        "Description": "Описание",
        "Domain": "Домен",
        "domain {domain}": "домен {domain}",
        "Tenant": "Тенант",
        "Aliases": "Псевдонимы",
        "Members": "Участники",
        "All tenants": "Все тенанты",
        "All domains": "Все домены",
        # --- sign in and out, sessions, forms
        "Sign in": "Вход",
        "User name or address": "Имя пользователя или адрес",
        "Password": "Пароль",
        "Signed out.": "Вы вышли из панели.",
        "Your session has ended; please sign in again.": "Сеанс завершён, войдите снова.",
        "Please sign in again.": "Войдите снова.",
        "The sign-in form has expired (or cookies are off). Please try again.": (
            "Форма входа устарела (или в браузере отключены cookie). Попробуйте ещё раз."
        ),
        "The form has expired or did not come from this panel. Reload the page, try again.": (
            "Форма устарела или отправлена не из этой панели. Обновите страницу и повторите."
        ),
        "The API does not answer ({error}).": "API не отвечает ({error}).",
        "The API answered HTTP {status}.": "API ответил HTTP {status}.",
        "Nothing to change.": "Изменений нет.",
        # --- users
        "New user": "Новый пользователь",
        "User {address}": "Пользователь {address}",
        "Create user": "Создать пользователя",
        "Display name": "Отображаемое имя",
        "Given name": "Имя (собственное)",
        "Surname": "Фамилия",
        "Mailbox quota": "Квота почтового ящика",
        "e.g. 512M, 2G; 0: unlimited": "напр. 512M, 2G; 0 — без ограничений",
        "Bytes or a number with K, M, G or T (binary units); 0 means unlimited.": (
            "Байты или число с K, M, G или T (двоичные единицы); 0 — без ограничений."
        ),
        "Further addresses of this mailbox, one a line.": (
            "Дополнительные адреса этого ящика, по одному в строке."
        ),
        "Account": "Учётная запись",
        "Enabled (may sign in and receive mail)": "Включена (может входить и получать почту)",
        "Administrator of the tenant": "Администратор тенанта",
        "Domains: {domains}": "Домены: {domains}",
        "member of": "участник групп",
        "Reset the password": "Сброс пароля",
        "New password": "Новый пароль",
        "8 to 128 characters. The user's sessions in mail clients need it at their next login.": (
            "От 8 до 128 символов. Почтовые клиенты пользователя запросят его при следующем входе."
        ),
        "Set password": "Задать пароль",
        "Quota": "Квота",
        "State": "Состояние",
        "Enabled and disabled": "Включённые и отключённые",
        "Enabled": "Включённые",
        "Disabled": "Отключённые",
        "enabled": "включена",
        "disabled": "отключена",
        "admin": "админ",
        "No users found.": "Пользователи не найдены.",
        "unlimited": "без ограничений",
        "{number} B": "{number} Б",
        "{number} KiB": "{number} КиБ",
        "{number} MiB": "{number} МиБ",
        "{number} GiB": "{number} ГиБ",
        "{number} TiB": "{number} ТиБ",
        "User {address} created.": "Пользователь {address} создан.",
        "User {address} saved.": "Пользователь {address} сохранён.",
        "The password of {address} has been reset.": "Пароль пользователя {address} сброшен.",
        "User {name} deleted.": "Пользователь {name} удалён.",
        # --- groups
        "New group": "Новая группа",
        "Group {address}": "Группа {address}",
        "Create group": "Создать группу",
        "Addresses of users of the same tenant, one a line.": (
            "Адреса пользователей того же тенанта, по одному в строке."
        ),
        "Further addresses of this group, one a line.": (
            "Дополнительные адреса этой группы, по одному в строке."
        ),
        "No groups found.": "Группы не найдены.",
        "Group {address} created.": "Группа {address} создана.",
        "Group {address} saved.": "Группа {address} сохранена.",
        "Group {name} deleted.": "Группа {name} удалена.",
        # --- domains and their DNS records
        "New domain": "Новый домен",
        "Domain {domain}": "Домен {domain}",
        "Create domain": "Создать домен",
        "DNS records": "DNS-записи",
        "DNS records of {domain}": "DNS-записи домена {domain}",
        "Publish these records in the domain's DNS zone so that mail is delivered here, "
        "accepted by other servers and found by mail clients.": (
            "Опубликуйте эти записи в DNS-зоне домена, чтобы почта доставлялась сюда, "
            "принималась другими серверами, а почтовые клиенты находили настройки."
        ),
        "Type": "Тип",
        "Value": "Значение",
        "Note": "Примечание",
        "No records.": "Записей нет.",
        "No domains.": "Доменов нет.",
        "Domain {name} created.": "Домен {name} создан.",
        "Domain {name} saved.": "Домен {name} сохранён.",
        "Domain {name} deleted.": "Домен {name} удалён.",
        # --- tenants
        "New tenant": "Новый тенант",
        "Tenant {name}": "Тенант {name}",
        "Create tenant": "Создать тенант",
        'Lower-case letters, digits, "-" and "_".': "Строчные латинские буквы, цифры, «-» и «_».",
        "No tenants.": "Тенантов нет.",
        "Tenant {name} created.": "Тенант {name} создан.",
        "Tenant {name} saved.": "Тенант {name} сохранён.",
        "Tenant {name} deleted.": "Тенант {name} удалён.",
        # --- deleting, confirmed
        "Delete user {name}?": "Удалить пользователя {name}?",
        "Delete user": "Удалить пользователя",
        "Delete group {name}?": "Удалить группу {name}?",
        "Delete group": "Удалить группу",
        "Delete domain {name}?": "Удалить домен {name}?",
        "Delete domain": "Удалить домен",
        "Delete tenant {name}?": "Удалить тенант {name}?",
        "Delete tenant": "Удалить тенант",
        "This cannot be undone.": "Это действие нельзя отменить.",
        "The mailbox's address stops receiving mail and the user is removed from every group.": (
            "Адрес ящика перестанет принимать почту, пользователь будет исключён из всех групп."
        ),
    },
}


def N_(msgid: str) -> str:
    """Mark a msgid translated later, where it is shown (gettext_noop)."""
    return msgid


def translate(language: str, msgid: str, **params: object) -> str:
    """`msgid` in `language` (English, or a msgid without translation: as it is), with its
    {placeholders} filled in."""
    text = CATALOGUE.get(language, {}).get(msgid, msgid)
    return text.format(**params) if params else text


def decimal(language: str, number: str) -> str:
    """A number written with `language`'s decimal separator."""
    return number.replace(".", DECIMAL_SEPARATORS.get(language, "."))
