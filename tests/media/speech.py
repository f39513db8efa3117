"""Speech material for talk-off tests: espeak-ng in several languages, 8 kHz mono."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np

TEXTS = {
    "en-us": "Please enter your meeting ID followed by the pound key. Thank you for calling, "
             "your conference will begin shortly. Press star one for help at any time.",
    "fr": "Veuillez entrer le numéro de la réunion suivi de la touche dièse. Merci de votre "
          "appel, la conférence va commencer.",
    "de": "Bitte geben Sie die Konferenz-ID ein, gefolgt von der Rautetaste. Vielen Dank für "
          "Ihren Anruf, die Besprechung beginnt in Kürze.",
    "es": "Por favor, introduzca el número de la reunión seguido de la tecla almohadilla. "
          "Gracias por llamar, su conferencia comenzará en breve.",
    "it": "Inserire l'identificativo della riunione seguito dal tasto cancelletto. Grazie per "
          "aver chiamato, la conferenza inizierà a breve.",
    "pt-br": "Digite o número da reunião seguido da tecla sustenido. Obrigado por ligar, sua "
             "conferência começará em breve.",
    "ko": "회의 아이디를 입력한 다음 우물 정자를 누르십시오. 전화해 주셔서 감사합니다.",
    "cmn-latn-pinyin": "qing3 shu1 ru4 hui4 yi4 hao4 ma3, ran2 hou4 an4 jing3 hao4 jian4. "
                       "xie4 xie4 nin2 de5 lai2 dian4.",
    "ja": "かいぎばんごうをにゅうりょくして、しゃーぷきーをおしてください。おでんわありがとうございます。",
}


def speech(directory: Path, voice: str) -> np.ndarray:
    raw = directory / f"raw-{voice}.wav"
    out = directory / f"speech-{voice}.wav"
    if not out.exists():
        subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), TEXTS[voice]],
                       check=True, capture_output=True, timeout=60)
        subprocess.run(["sox", str(raw), "-r", "8000", "-b", "16", "-c", "1", str(out)],
                       check=True, capture_output=True, timeout=60)
    with wave.open(str(out)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
